"""The tiny ViT's size, and DINOv2 ViT-S/14: Meta's tensor names and count, strict loading from
.pth and .safetensors files, clear errors for missing and mismatched tensors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from dreamgym.errors import DreamgymError
from dreamgym.worldmodels.latent.encoders import (
    DINOV2_PARAMETERS,
    DINOV2_TENSORS,
    TINY,
    VisionTransformer,
    dinov2_vits14,
    images_to_input,
    load_dinov2,
)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def dinov2_files(tmp_path_factory):
    """A randomly initialised ViT-S/14 saved with Meta's names as .pth and .safetensors."""
    torch.manual_seed(0)
    model = VisionTransformer(dinov2_vits14(28)).eval()
    with torch.no_grad():  # non-trivial LayerScale and mask token, as a trained file has
        for block in model.blocks:
            block.ls1.gamma.uniform_(0.5, 1.5)
            block.ls2.gamma.uniform_(0.5, 1.5)
        model.mask_token.normal_()
    root = tmp_path_factory.mktemp("dinov2")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, root / "dinov2_vits14_pretrain.pth")
    save_file(state, str(root / "dinov2.safetensors"))
    return model, root


def test_tiny_vit_shape_and_size():
    model = VisionTransformer(TINY)
    assert n_params(model) == 2_719_296  # ~2.7M: 64 px, patch 8, width 192, depth 6
    tokens = model(torch.randn(2, 3, 64, 64))
    assert tokens.shape == (2, 1 + 64, 192)


def test_dinov2_has_metas_tensor_names_and_count():
    model = VisionTransformer(dinov2_vits14())
    state = model.state_dict()
    assert len(state) == DINOV2_TENSORS == 175
    assert n_params(model) == DINOV2_PARAMETERS == 22_056_576
    assert state["pos_embed"].shape == (1, 1 + 37 * 37, 384)  # the 518 px hub default
    assert state["mask_token"].shape == (1, 384)
    assert state["patch_embed.proj.weight"].shape == (384, 3, 14, 14)
    for name in ("norm1.weight", "attn.qkv.weight", "attn.proj.bias", "ls1.gamma", "norm2.bias",
                 "mlp.fc1.weight", "mlp.fc2.bias", "ls2.gamma"):  # fmt: skip
        assert f"blocks.11.{name}" in state
    assert {"norm.weight", "norm.bias", "cls_token"} <= set(state)


def test_position_embedding_is_resized_like_dinov2():
    model = VisionTransformer(dinov2_vits14())
    assert model.position_embedding(37, 37) is model.pos_embed  # 518 px: the stored grid
    pos = model.position_embedding(14, 14)  # 196 px, DINO-WM's size
    assert pos.shape == (1, 1 + 14 * 14, 384)
    torch.testing.assert_close(pos[:, 0], model.pos_embed[:, 0])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_saved_checkpoint_loads_and_gives_identical_outputs(dinov2_files, suffix):
    source, root = dinov2_files
    path = root / ("dinov2_vits14_pretrain.pth" if suffix == ".pth" else "dinov2.safetensors")
    loaded = load_dinov2(path, image_size=28)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    x = images_to_input(frames, 28)
    assert x.shape == (2, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path / "home"))
    with pytest.raises(DreamgymError, match="weights/dinov2_vits14_pretrain.pth"):
        load_dinov2(None)
    with pytest.raises(DreamgymError, match="not found at .*nowhere.pth"):
        load_dinov2(tmp_path / "nowhere.pth")


def test_missing_extra_and_mismatched_tensors_are_named(dinov2_files, tmp_path):
    source, _ = dinov2_files
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    cases = {
        "missing tensor 'blocks.3.ls1.gamma'": {
            k: v for k, v in state.items() if k != "blocks.3.ls1.gamma"
        },
        "unexpected tensor 'register_tokens'": {**state, "register_tokens": torch.zeros(1, 4, 384)},
        "'pos_embed' has shape \\(1, 257, 384\\)": {**state, "pos_embed": torch.zeros(1, 257, 384)},
    }
    for i, (message, tensors) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.safetensors"
        save_file(tensors, str(path))
        with pytest.raises(DreamgymError, match=message) as error:
            load_dinov2(path)
        assert "\n" not in str(error.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DreamgymError, match="cannot read weights"):
        load_dinov2(tmp_path / "junk.pth")


def test_dinov2_image_size_must_fit_its_patches():
    with pytest.raises(DreamgymError, match="divisible by 14"):
        dinov2_vits14(64)
