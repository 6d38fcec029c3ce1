"""The four real scorers, as tiny random-weight models of their real architectures, saved and reloaded
through the real loading code (transformers folders, .pth/.pt weights-only, safetensors)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from evaluation.scorers.base import SCORERS, build_scorer
from evaluation.scorers.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from inpo.config.sections import (
    AestheticScorerConfig,
    ClipScorerConfig,
    EvalConfig,
    HpsScorerConfig,
    PickScoreScorerConfig,
)
from inpo.testing.tiny_scorers import (
    TINY_OPEN_CLIP,
    write_tiny_clip,
    write_tiny_open_clip,
    write_tiny_pickscore,
)

WORDS = ["a", "red", "green", "blue", "circle", "square", "on", "background"]


def _stripes(width: int = 64, height: int = 32) -> Image.Image:
    """Non-square test image: left quarter red, middle half green, right quarter blue."""
    image = Image.new("RGB", (width, height), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, width // 4, height))
    image.paste((0, 0, 255), (3 * width // 4, 0, width, height))
    return image


def _images(n: int) -> list[Image.Image]:
    gen = torch.Generator().manual_seed(0)
    return [
        Image.fromarray((torch.rand(24 + 8 * (i % 3), 40, 3, generator=gen) * 255).to(torch.uint8).numpy())
        for i in range(n)
    ]


def _unnormalize(pixels: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` normalised → RGB in [0, 1]."""
    return pixels * torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1) + torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)


_save_tiny_clip = write_tiny_clip


# ---------------------------------------------------------------- aesthetic

SPEC_HEAD_SHAPES = {  # spec: Linear(768,1024) Dropout Linear(1024,128) Dropout Linear(128,64) Dropout Linear(64,16) Linear(16,1)
    "layers.0.weight": (1024, 768),
    "layers.0.bias": (1024,),
    "layers.2.weight": (128, 1024),
    "layers.2.bias": (128,),
    "layers.4.weight": (64, 128),
    "layers.4.bias": (64,),
    "layers.6.weight": (16, 64),
    "layers.6.bias": (16,),
    "layers.7.weight": (1, 16),
    "layers.7.bias": (1,),
}


@pytest.fixture(scope="module")
def aesthetic_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("aesthetic")
    clip = _save_tiny_clip(root / "clip", projection_dim=768)
    gen = torch.Generator().manual_seed(1)
    # A state dict written from the spec's key names and shapes alone (as the LAION .pth file holds).
    state = {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in SPEC_HEAD_SHAPES.items()}
    torch.save(state, root / "sac+logos+ava1-l14-linearMSE.pth")
    return clip, root / "sac+logos+ava1-l14-linearMSE.pth", state


def _aesthetic(files: tuple[Path, Path, dict[str, torch.Tensor]]):
    clip, head, _ = files
    return build_scorer(
        "aesthetic", EvalConfig(aesthetic=AestheticScorerConfig(clip_model=str(clip), head=str(head)))
    )


def test_aesthetic_head_has_spec_layers_and_loads_spec_keys(aesthetic_files) -> None:
    scorer = _aesthetic(aesthetic_files)
    layers = scorer.head.layers
    assert [type(m).__name__ for m in layers] == ["Linear", "Dropout"] * 3 + ["Linear", "Linear"]
    assert [m.p for m in layers if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2, 0.1]
    assert {k: tuple(v.shape) for k, v in scorer.head.state_dict().items()} == SPEC_HEAD_SHAPES
    for key, value in aesthetic_files[2].items():
        assert torch.equal(scorer.head.state_dict()[key], value), key
    assert not scorer.head.training and not scorer.vision.training


def test_aesthetic_score_is_head_of_normalised_embedding_and_ignores_prompt(aesthetic_files) -> None:
    scorer = _aesthetic(aesthetic_files)
    images = _images(3)
    pixels = scorer.preprocess(images)
    raw = scorer.vision(pixel_values=pixels).image_embeds
    emb = scorer.embed_images(pixels)
    assert emb.shape == (3, 768)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        expected = scorer.head(raw / raw.norm(dim=-1, keepdim=True)).squeeze(-1)
        unnormalised = scorer.head(raw).squeeze(-1)
    scores = scorer.score(images, ["a red circle"] * 3)
    assert scores.dtype == torch.float32 and scores.shape == (3,)
    torch.testing.assert_close(scores, expected)
    assert not torch.allclose(scores, unnormalised, atol=1e-3)  # the L2 normalisation matters
    torch.testing.assert_close(scorer.score(images, ["x", "y", "z"]), scores)  # prompt ignored
    info = scorer.info()
    assert info["metric"] == "aesthetic" and info["head_file"] == "sac+logos+ava1-l14-linearMSE.pth"


def test_aesthetic_refuses_a_clip_folder_missing_the_visual_projection(
    aesthetic_files, tmp_path: Path
) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    clip, head, _ = aesthetic_files
    broken = Path(shutil.copytree(clip, tmp_path / "broken"))
    state = load_file(str(broken / "model.safetensors"))
    del state["visual_projection.weight"]
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    cfg = EvalConfig(aesthetic=AestheticScorerConfig(clip_model=str(broken), head=str(head)))
    with pytest.raises(ValueError, match="missing .*visual_projection.weight"):
        build_scorer("aesthetic", cfg)


# ---------------------------------------------------------------- preprocessing geometry


def test_centre_crop_and_longest_side_pad_differ_on_a_non_square_image(
    aesthetic_files, open_clip_files
) -> None:
    """64×32 stripes (red | green green | blue). Centre crop (aesthetic/PickScore): shorter side 32,
    keep columns 16..47 → all green. HPS/CLIP: scale 0.5 → 32×16, pad 8 black rows above and below,
    all three colours kept."""
    image = _stripes()
    crop = _unnormalize(_aesthetic(aesthetic_files).preprocess([image])[0])
    pad = _unnormalize(_hps(open_clip_files).preprocess([image])[0])
    assert crop.shape == pad.shape == (3, 32, 32)
    torch.testing.assert_close(
        crop, torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 32, 32), atol=2e-2, rtol=0
    )
    torch.testing.assert_close(
        pad[:, :8], torch.zeros(3, 8, 32), atol=1e-5, rtol=0
    )  # black before normalising
    torch.testing.assert_close(pad[:, 24:], torch.zeros(3, 8, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        pad[:, 10:22, 2], torch.tensor([1.0, 0, 0]).view(3, 1).expand(3, 12), atol=2e-2, rtol=0
    )
    torch.testing.assert_close(
        pad[:, 10:22, 16], torch.tensor([0, 1.0, 0]).view(3, 1).expand(3, 12), atol=2e-2, rtol=0
    )
    torch.testing.assert_close(
        pad[:, 10:22, 29], torch.tensor([0, 0, 1.0]).view(3, 1).expand(3, 12), atol=2e-2, rtol=0
    )
    # a tall image pads left and right instead: 32×64 → 16×32, columns 0..7 and 24..31 black
    tall = _unnormalize(_hps(open_clip_files).preprocess([_stripes().rotate(90, expand=True)])[0])
    torch.testing.assert_close(tall[:, :, :8], torch.zeros(3, 32, 8), atol=1e-5, rtol=0)
    assert tall[:, :, 8:24].abs().sum() > 100


# ---------------------------------------------------------------- PickScore


@pytest.fixture(scope="module")
def pickscore_files(tmp_path_factory: pytest.TempPathFactory) -> dict[float, tuple[Path, Path]]:
    """Two saved copies of one tiny CLIPModel that differ only in logit_scale (ln 10 and ln 20)."""
    from transformers import CLIPModel

    root = tmp_path_factory.mktemp("pickscore")
    base, processor = write_tiny_pickscore(root, WORDS)
    out = {}
    for scale in (10.0, 20.0):
        model = CLIPModel.from_pretrained(base)
        model.logit_scale.data.fill_(math.log(scale))
        model.save_pretrained(root / f"scale{scale:g}")
        out[scale] = (root / f"scale{scale:g}", processor)
    return out


def _pickscore(files: tuple[Path, Path], batch_size: int = 16):
    model, processor = files
    cfg = EvalConfig(
        pickscore=PickScoreScorerConfig(model=str(model), processor=str(processor)),
        score_batch_size=batch_size,
    )
    return build_scorer("pickscore", cfg)


def test_pickscore_is_logit_scale_times_cosine_of_unit_embeddings(pickscore_files) -> None:
    scorer = _pickscore(pickscore_files[10.0])
    images, prompts = _images(4), ["a red circle", "a blue square", "green", "a circle on a red background"]
    img, txt = scorer.embed_images(scorer.preprocess(images)), scorer.embed_texts(prompts)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(4))
    scores = scorer.score(images, prompts)
    torch.testing.assert_close(scores, 10.0 * (img * txt).sum(-1))  # exp(ln 10) = 10
    assert scorer.info()["logit_scale_exp"] == pytest.approx(10.0)


def test_pickscore_applies_the_models_logit_scale(pickscore_files) -> None:
    images, prompts = _images(3), ["a red circle", "blue", "a green square"]
    s10 = _pickscore(pickscore_files[10.0]).score(images, prompts)
    s20 = _pickscore(pickscore_files[20.0]).score(images, prompts)
    assert s10.abs().min() > 1e-4
    torch.testing.assert_close(s20, 2.0 * s10)  # exp(ln 20) / exp(ln 10) = 2


def test_pickscore_batches_truncates_and_checks_lengths(pickscore_files) -> None:
    images = _images(5)
    prompts = ["a red circle " * 60] + ["blue"] * 4  # 180 words: truncated to 77 tokens
    full = _pickscore(pickscore_files[10.0]).score(images, prompts)
    by_two = _pickscore(pickscore_files[10.0], batch_size=2).score(images, prompts)
    assert full.shape == (5,) and full.dtype == torch.float32
    torch.testing.assert_close(by_two, full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="5 images but 4 prompts"):
        _pickscore(pickscore_files[10.0]).score(images, prompts[:4])


# ---------------------------------------------------------------- HPS and CLIP (open_clip)


@pytest.fixture(scope="module")
def open_clip_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_open_clip(tmp_path_factory.mktemp("open_clip"))


def _hps(files: dict[str, Path], version: str = "v2.0"):
    cfg = HpsScorerConfig(version=version, architecture=str(files["config"]), checkpoint=str(files["hps"]))  # type: ignore[arg-type]
    return build_scorer("hps", EvalConfig(hps=cfg))


def test_hps_loads_state_dict_and_scores_cosines(open_clip_files) -> None:
    from safetensors.torch import load_file

    scorer = _hps(open_clip_files)
    saved = load_file(str(open_clip_files["clip"]))
    for key, value in scorer.model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    images, prompts = _images(3), ["a red circle", "a blue square", "green"]
    img, txt = scorer.embed_images(scorer.preprocess(images)), scorer.embed_texts(prompts)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(3))
    scores = scorer.score(images, prompts)
    torch.testing.assert_close(scores, (img * txt).sum(-1))  # a raw cosine, not ×100
    assert scores.abs().max() <= 1.0
    assert scorer.name == "hps-v2.0"
    info = scorer.info()
    assert info["version"] == "v2.0" and info["checkpoint_file"] == "HPS_v2_compressed.pt"
    assert info["preprocess"]["antialias"] is True and info["preprocess"]["size"] == 32
    assert _hps(open_clip_files, "v2.1").name == "hps-v2.1"


def test_hps_checkpoint_is_read_weights_only(open_clip_files, tmp_path: Path) -> None:
    import open_clip

    state = open_clip.CLIP(**TINY_OPEN_CLIP).state_dict()
    torch.save({"state_dict": state, "extra": Path("not-a-tensor")}, tmp_path / "evil.pt")
    cfg = HpsScorerConfig(architecture=str(open_clip_files["config"]), checkpoint=str(tmp_path / "evil.pt"))
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported global"):
        build_scorer("hps", EvalConfig(hps=cfg))


def test_clip_score_from_safetensors_records_backbone_and_respects_dtype(open_clip_files) -> None:
    cfg = ClipScorerConfig(
        architecture=str(open_clip_files["config"]), pretrained=str(open_clip_files["clip"])
    )
    scorer = build_scorer("clip", EvalConfig(clip=cfg))
    images, prompts = _images(2), ["a red circle", "blue"]
    scores = scorer.score(images, prompts)
    torch.testing.assert_close(
        scores, _hps(open_clip_files).score(images, prompts)
    )  # same weights, same cosine
    info = scorer.info()
    assert scorer.name == "clip" and info["architecture"].endswith("tiny-vit.json")
    assert info["pretrained"] == str(open_clip_files["clip"]) and info["dtype"] == "float32"
    half = build_scorer("clip", EvalConfig(clip=cfg), dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    low = half.score(images, prompts)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, scores, atol=3e-2, rtol=0)


# ---------------------------------------------------------------- registry


def test_registry_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(KeyError, match="aesthetic, clip, hps, oracle, oracle_strict, pickscore"):
        build_scorer("imagereward", EvalConfig())
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        build_scorer("clip", EvalConfig(), dtype="float8")


def test_registry_imports_a_scorer_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCORERS["oracle"] == "inpo.toyworld.oracle:OracleScorer"
    (tmp_path / "lazy_scorer_mod.py").write_text(
        "import torch\n"
        "from evaluation.scorers.base import Scorer\n"
        "class Const(Scorer):\n"
        "    name = 'const'\n"
        "    @classmethod\n"
        "    def from_config(cls, eval_cfg, device='cpu', dtype=None):\n"
        "        return cls(device, dtype, eval_cfg.score_batch_size)\n"
        "    def _score_batch(self, images, prompts):\n"
        "        return torch.full((len(images),), 3.0, dtype=torch.float64)\n"
        "    def info(self):\n"
        "        return {'metric': self.name}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(SCORERS, "const", "lazy_scorer_mod:Const")
    assert "lazy_scorer_mod" not in sys.modules
    scorer = build_scorer("const", EvalConfig(score_batch_size=2))
    assert "lazy_scorer_mod" in sys.modules
    out = scorer.score(_images(5), ["p"] * 5)
    assert out.dtype == torch.float32 and out.tolist() == [3.0] * 5
    assert scorer.score([], []).shape == (0,)
    monkeypatch.delitem(sys.modules, "lazy_scorer_mod")


def test_weight_files_resolve_locally_or_fail_naming_the_hub_file(tmp_path: Path) -> None:
    from evaluation.scorers.loading import load_state_dict, resolve_file

    with pytest.raises(FileNotFoundError, match="not a local file and not a hub file"):
        resolve_file(str(tmp_path / "nowhere.pt"))
    with pytest.raises(
        FileNotFoundError, match="'HPS_v2.1_compressed.pt' of 'xswu/HPSv2' could not be fetched"
    ):
        resolve_file("xswu/HPSv2/HPS_v2.1_compressed.pt")  # HF_HUB_OFFLINE=1 and no cache
    (tmp_path / "w.ckpt.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported weights format '.txt'"):
        load_state_dict(tmp_path / "w.ckpt.txt")


def test_toy_oracle_and_toy_prompts_come_through_the_registries() -> None:
    """Integration with the toy world: ``oracle`` and ``toy`` resolve by import path when asked for."""
    from evaluation.prompts import load_prompt_set

    toy = load_prompt_set("toy")
    assert len(toy) > 0 and all(isinstance(p.text, str) and p.text for p in toy.prompts)
    oracle = build_scorer("oracle", EvalConfig())
    out = oracle.score([Image.new("RGB", (16, 16))] * 2, [p.text for p in toy.prompts[:2]])
    assert oracle.name == "oracle" and out.dtype == torch.float32 and out.shape == (2,)
    assert isinstance(oracle.info(), dict)
