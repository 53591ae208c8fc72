"""What SANM's reconstruction decoder costs on an ImageNet-size backbone, against the backbone itself.

Forward + backward of a torchvision ResNet-50 (or `--arch`) at 224x224, and of the decoder that
`SANMAugmenter` builds for its 7x7x2048 feature map (1x1 reduction to 256 channels, five 2x transposed-
convolution stages, both `sanm.decoder` kinds), on the same random batch; best of `--repeats` after a warm-up,
in one process. Figures are printed, never asserted.

    python benchmarks/decoder_cost.py --threads 1 --batch 4
    python benchmarks/decoder_cost.py --device cuda --batch 64
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from sanm_plugin import FeatureTap
from sanm_plugin.decoder import ReconstructionDecoder


def best_time(step, repeats: int, device: torch.device) -> float:
    step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = torchvision.models.get_model(args.arch, weights=None, num_classes=14).to(device).train()
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    _, feats = FeatureTap(model)(images)
    shape = tuple(feats.shape[1:])

    def backbone_step():
        model.zero_grad(set_to_none=True)
        model(images).sum().backward()

    backbone = best_time(backbone_step, args.repeats, device)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch} at {args.size}px, batch {args.batch}, {device}, {torch.get_num_threads()} threads: "
          f"feature map {shape}, {params / 1e6:.1f}M parameters, forward + backward {backbone * 1e3:.0f} ms")
    masked = feats.detach().requires_grad_(True)
    for kind in ("bn", "linear"):
        decoder = ReconstructionDecoder(shape[0], (3, args.size, args.size), shape[1:], kind).to(device).train()

        def decoder_step():
            decoder.zero_grad(set_to_none=True)
            (decoder(masked) - images).square().mean().backward()

        cost = best_time(decoder_step, args.repeats, device)
        count = sum(p.numel() for p in decoder.parameters())
        print(f"  decoder={kind}: {count / 1e6:.2f}M parameters, forward + backward {cost * 1e3:.0f} ms "
              f"({cost / backbone:.2f}x the backbone's)")


if __name__ == "__main__":
    main()
