"""Benchmark: captioning throughput of the recaption stage's model call, no Airflow, no data.

    .venv/bin/python bench/recaption.py --arch blip-base --samples 64 --batch 16
    .venv/bin/python bench/recaption.py --model Salesforce/blip-image-captioning-base \\
        --device cuda --samples 4096 --batch 256          # real weights from the HF cache

``--model`` (a Hub id already in the Hugging Face cache, or a local folder) measures the
stage's own path: ``laionflow.captioning.model.load`` + ``caption`` (processor, generate,
decode) on PIL images. ``--arch`` builds a real architecture from its ``transformers`` config
with random weights (nothing is downloaded) and forces exactly ``--tokens`` new tokens per
caption, so the number is the compute of that model at that caption length — what the model
costs, whatever its weights say. Images are scikit-image's photographs, resized and cycled.
The model is loaded and warmed up (one batch) outside the timing. Prints one line per run:
samples/s, seconds, device, dtype, parameters.
"""

from __future__ import annotations

import argparse
import time

#: real architectures by their published configs (sizes of the checkpoints they mirror)
ARCHS = {
    # Salesforce/blip-image-captioning-base, 247M
    "blip-base": ("blip", {}),
    # Salesforce/blip-image-captioning-large, 470M: ViT-L/16 vision tower
    "blip-large": (
        "blip",
        {
            "vision_config": {
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
            }
        },
    ),
    # microsoft/git-base, 177M
    "git-base": ("git", {}),
}


def photos(n: int, side: int = 384) -> list:
    from PIL import Image
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "horse"]
    base = []
    for name in names:
        arr = getattr(data, name)()
        base.append(Image.fromarray(arr).convert("RGB").resize((side, side)))
    return [base[i % len(base)] for i in range(n)]


def random_arch(arch: str, device: str, dtype):
    """A model of ``arch`` with random weights and a generate() over pixel values only."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, GitConfig, GitForCausalLM

    kind, kwargs = ARCHS[arch]
    torch.manual_seed(0)
    if kind == "blip":
        model = BlipForConditionalGeneration(BlipConfig(**kwargs))
        side = model.config.vision_config.image_size
    else:
        model = GitForCausalLM(GitConfig(**kwargs))
        side = model.config.vision_config.image_size
    model.to(device, dtype=dtype).eval()
    print(f"{arch}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")
    return model, side


def run_arch(args, device: str, dtype) -> tuple[float, int]:
    import torch

    model, side = random_arch(args.arch, device, dtype)
    pixels = torch.randn(args.batch, 3, side, side, device=device, dtype=dtype)
    text = model.config.text_config if args.arch.startswith("blip") else model.config
    # BLIP drops the prompt's last token ([SEP]) before generating: give it [BOS, SEP]
    prompt = [text.bos_token_id, text.sep_token_id] if args.arch.startswith("blip") else [101]
    ids = torch.tensor([prompt] * args.batch, device=device, dtype=torch.long)
    gen = {"max_new_tokens": args.tokens, "min_new_tokens": args.tokens, "do_sample": False}

    def step() -> None:
        with torch.inference_mode():
            model.generate(pixel_values=pixels, input_ids=ids, **gen)

    step()  # warm-up
    started = time.perf_counter()
    batches = max(1, args.samples // args.batch)
    for _ in range(batches):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started, batches * args.batch


def run_model(args, device: str) -> tuple[float, int]:
    from laionflow.captioning import model as captioner
    from laionflow.captioning.config import RecaptionConfig

    cfg = RecaptionConfig(
        enabled=True,
        model=args.model,
        prompt=args.prompt,
        dtype=args.dtype,
        max_new_tokens=args.tokens,
        batch_size=args.batch,
    )
    cap = captioner.load(cfg, device)
    images = photos(args.samples)
    captioner.caption(cap, images[: args.batch])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(images), args.batch):
        captioner.caption(cap, images[i : i + args.batch])
    return time.perf_counter() - started, len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="Hub id (in the HF cache) or local folder")
    what.add_argument("--arch", choices=sorted(ARCHS) + ["tiny"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=20, help="new tokens per caption")
    ap.add_argument("--prompt", default="a picture of")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    import torch

    from laionflow.captioning.model import pick_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = pick_dtype(args.dtype, args.device)
    if args.arch == "tiny":  # the tests' captioner, through the stage's own path
        import tempfile

        from laionflow.captioning.tiny import save_tiny_captioner

        args.model, args.arch = save_tiny_captioner(tempfile.mkdtemp() + "/tiny"), None
    if args.model:
        seconds, n = run_model(args, args.device)
        label = args.model
    else:
        seconds, n = run_arch(args, args.device, dtype)
        label = f"{args.arch} (random weights, {args.tokens} tokens)"
    print(
        f"recaption {label}: {n / seconds:.2f} samples/s ({n} in {seconds:.1f} s) "
        f"device={args.device} dtype={str(dtype).replace('torch.', '')} batch={args.batch} "
        f"threads={torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
