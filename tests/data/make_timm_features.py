"""Make ``timm_tinynet_mini_features.npz``: timm's backbone (``features_only=True``, all five levels) of the mini
TinyNet with the weights of ``timm_tinynet_mini.safetensors``, in eval mode, on two inputs: the (2, 3, 64, 64) of
``timm_tinynet_mini.npz`` and a non-square (1, 3, 72, 90) one. ``tests/test_backbone.py`` compares tinynet_ms's
``features_only`` network with it. Run once in a timm environment, from the repository root:

    PY=$(bash ../shared/tools/timm_reference_env.sh) && $PY tests/data/make_timm_features.py
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ODD_INPUT_SHAPE = (1, 3, 72, 90)


def main() -> None:
    import torch
    from safetensors.torch import load_file
    from timm.models.efficientnet import _gen_tinynet

    model = _gen_tinynet("tinynet_e", model_width=0.25, depth_multiplier=0.35, features_only=True,
                         out_indices=(0, 1, 2, 3, 4))
    state = load_file(str(HERE / "timm_tinynet_mini.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and all(k.startswith(("conv_head.", "bn2.", "classifier.")) for k in unexpected), missing
    model.eval()
    inputs = {"square": np.load(HERE / "timm_tinynet_mini.npz")["input"],
              "odd": np.random.default_rng(5).standard_normal(ODD_INPUT_SHAPE).astype(np.float32)}
    out = {"reductions": np.array(model.feature_info.reduction()), "channels": np.array(model.feature_info.channels())}
    with torch.no_grad():
        for key, x in inputs.items():
            out[f"{key}_input"] = x
            for i, f in enumerate(model(torch.from_numpy(x))):
                out[f"{key}_feature{i}"] = f.numpy()
    np.savez_compressed(HERE / "timm_tinynet_mini_features.npz", **out)
    print(f"channels {out['channels'].tolist()} reductions {out['reductions'].tolist()}; "
          f"wrote {HERE / 'timm_tinynet_mini_features.npz'}")


if __name__ == "__main__":
    main()
