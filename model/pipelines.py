"""Text-to-face pipelines: one object per method, one interface.

Every pipeline has::

    images = pipe.generate(prompts, n, seed, **opts)   # [len(prompts) * n, 3, H, W] in [-1, 1]
    pipe.last_info                                      # timing of that call (seconds, ms_per_image, ...)

Rows are prompt-major: images ``p*n .. p*n+n-1`` belong to ``prompts[p]``. The same
arguments give the same images (every random draw comes from a generator seeded by
``seed``).

Methods (``build_pipeline(name, ...)``):

- ``flow``, ``cvae-mapper``: the text-free mappers. The prompt is embedded by the
  *conditioning* CLIP, optionally shifted across the modality gap
  (``modality_shift=True``: text embedding - mean caption text embedding + the mean image
  embedding of the mapper's training pairs), ``w ~ mapper.sample(e, n, temperature)``,
  optionally truncated toward ``G.w_avg`` (``trunc``), then ``G.synthesis``.
  ``image=REF`` conditions on the CLIP image embedding of a reference picture, or with
  prompts on the blend ``normalize((1 - mix) * e_text + mix * e_image)`` (Text+Image mode).
- ``cvae``, ``gan``: the image baselines (CLIP-text or attribute conditioned checkpoints).
- ``clip-opt``: CLIP-guided latent optimisation per image (the slow reference).
- ``unconditional``: the generator at truncation 1; ignores the prompt (evaluation reference).
- ``real``: real test images that carry the prompted attributes (evaluation reference;
  needs ``attributes=[{...}, ...]`` and a CelebA-format ``data`` folder).

Prompts: an empty prompt is a UserError; a prompt longer than CLIP's context (77 tokens
for the OpenAI models) is refused with a UserError naming it (no silent truncation).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.misc import UserError

MODELS = ("flow", "cvae-mapper", "cvae", "gan", "clip-opt", "unconditional", "real")
GENERATIVE_MODELS = ("flow", "cvae-mapper", "cvae", "gan", "clip-opt")
MAPPER_KINDS = ("flow", "cvae-mapper")
BASELINE_KINDS = ("cvae", "gan")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def check_prompts(prompts: Sequence[str] | str, allow_empty_list: bool = False) -> list[str]:
    """A list of non-empty prompts (whitespace stripped); UserError naming the bad one otherwise."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = [str(p).strip() for p in prompts]
    if not prompts and not allow_empty_list:
        raise UserError("no prompt given; pass at least one prompt")
    for i, p in enumerate(prompts):
        if not p:
            raise UserError(f"prompt {i + 1} is empty; give a description such as 'a smiling woman with blond hair'")
    return prompts


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise UserError(f"-n must be at least 1, got {n}")
    return int(n)


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    return device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bundled(name: str) -> str:
    from model.bundled import bundled_path

    return str(bundled_path(name))


def load_reference_image(image: Any) -> torch.Tensor:
    """A reference picture as uint8 [1, 3, H, W]: a path, a PIL image, a uint8 array or a tensor."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, torch.Tensor):
        x = image
        if x.ndim == 3:
            x = x[None]
        if x.dtype != torch.uint8:
            x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x
    if isinstance(image, np.ndarray):
        arr = image
    else:
        if isinstance(image, (str, os.PathLike)):
            if not os.path.isfile(image):
                raise UserError(f"--image {image}: no such file")
            try:
                with Image.open(image) as im:
                    arr = np.asarray(im.convert("RGB"))
            except (UnidentifiedImageError, OSError) as e:
                raise UserError(f"--image {image}: not a readable image ({type(e).__name__})") from None
        else:
            arr = np.asarray(image.convert("RGB"))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(np.array(arr[..., :3], dtype=np.uint8, copy=True)).permute(2, 0, 1)[None]


class Timer:
    """Accumulates wall time of named stages."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stages: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                _sync(timer.device)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                _sync(timer.device)
                timer.stages[name] = timer.stages.get(name, 0.0) + time.perf_counter() - self.t0

        return _Ctx()


# ---------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------


class Pipeline:
    """Base class: ``generate`` wraps ``_generate`` with prompt checks and timing."""

    name = "pipeline"
    uses_prompt = True

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = _resolve_device(device)
        self.last_info: dict[str, Any] = {}

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], n: int, seed: int = 0, **opts) -> torch.Tensor:
        prompts = check_prompts(prompts, allow_empty_list=opts.get("image") is not None)
        n = _check_n(n)
        timer = Timer(self.device)
        _sync(self.device)
        t0 = time.perf_counter()
        images = self._generate(prompts, n, int(seed), timer, **opts)
        _sync(self.device)
        seconds = time.perf_counter() - t0
        count = int(images.shape[0])
        self.last_info = {
            "model": self.name,
            "images": count,
            "seconds": seconds,
            "ms_per_image": 1000.0 * seconds / max(count, 1),
            "images_per_s": count / seconds if seconds > 0 else float("inf"),
            "stages": dict(timer.stages),
            "batch_size": int(opts.get("batch_size") or 0) or None,
            "device": str(self.device),
        }
        return images.float().clamp(-1, 1).cpu()

    def _generate(self, prompts, n, seed, timer, **opts) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class _GeneratorMixin:
    G: Any

    def synthesize(self, w: torch.Tensor, trunc: float, batch_size: int, timer: Timer) -> torch.Tensor:
        """[N, w_dim] -> images, truncation toward G.w_avg, in batches."""
        from model.mapper import broadcast_w

        if trunc != 1.0:
            w_avg = self.G.w_avg.to(w)
            w = w_avg + float(trunc) * (w - w_avg)
        out = []
        with timer("G"):
            for i in range(0, len(w), batch_size):
                ws = broadcast_w(w[i : i + batch_size], self.G.num_ws)
                out.append(self.G.synthesis(ws, noise_mode="const").float())
        return torch.cat(out)


class MapperPipeline(Pipeline, _GeneratorMixin):
    """flow / cvae-mapper: CLIP text (or image) embedding -> mapper -> w -> G."""

    def __init__(self, kind: str, G, clip_model, mapper, device="cpu", clip_name: str = "", mapper_path: str = "",
                 modality_shift: bool | None = None):
        super().__init__(device)
        from model.mapper import check_mapper_fits

        self.name = kind
        self.G, self.clip, self.mapper = G, clip_model, mapper
        self.clip_name, self.mapper_path = clip_name, mapper_path
        check_mapper_fits(mapper, clip_model, G, path=mapper_path or None)
        if modality_shift is None:
            cfg = getattr(mapper, "checkpoint_config", {}) or {}
            modality_shift = bool(cfg.get("modality_shift", cfg.get("inference", {}).get("modality_shift", False)))
        self.modality_shift = bool(modality_shift)
        self._text_mean: torch.Tensor | None = None

    def text_mean(self) -> torch.Tensor:
        """Mean (un-normalised) text embedding of a fixed caption set, for the modality shift."""
        if self._text_mean is None:
            from model.clip_io import encode_text

            self._text_mean = encode_text(self.clip, caption_set(), progress=False).mean(0)
        return self._text_mean

    def embed(self, prompts: list[str], image=None, mix: float | None = None, modality_shift: bool | None = None) -> torch.Tensor:
        """The conditioning embeddings [P, D] (P = len(prompts), or 1 for an image alone)."""
        from model.clip_io import encode_images, encode_text
        from model.mapper import modality_shift as shift_fn

        shift = self.modality_shift if modality_shift is None else bool(modality_shift)
        e_text = None
        if prompts:
            e_text = encode_text(self.clip, prompts, progress=False)
            if shift:
                e_text = shift_fn(e_text, self.text_mean(), self.mapper.e_image_mean.detach().cpu())
        if image is None:
            if mix is not None and float(mix) != 0.0:
                raise UserError("--mix needs --image REF.png")
            return e_text
        e_img = encode_images(self.clip, load_reference_image(image), progress=False)  # [1, D]
        if e_text is None:
            return e_img
        a = 0.5 if mix is None else float(mix)
        if not 0.0 <= a <= 1.0:
            raise UserError(f"--mix must be between 0 (text only) and 1 (image only), got {a}")
        return F.normalize((1 - a) * e_text + a * e_img, dim=-1)

    def _generate(self, prompts, n, seed, timer, temperature: float = 1.0, trunc: float = 1.0, image=None,
                  mix: float | None = None, modality_shift: bool | None = None, batch_size: int = 64, **_):
        if temperature < 0:
            raise UserError(f"--temperature must be >= 0, got {temperature}")
        with timer("text"):
            e = self.embed(prompts, image, mix, modality_shift)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with timer("mapper"):
            # Noise drawn on the CPU so a seed gives the same images on every device.
            dev = self.mapper.w_mean.device
            w = self.mapper.sample(e.to(dev), n, float(temperature), generator=gen if dev.type == "cpu" else None) \
                if dev.type == "cpu" else self._sample_via_cpu_noise(e, n, float(temperature), gen)
        return self.synthesize(w.to(self.device), float(trunc), int(batch_size or 64), timer)

    def _sample_via_cpu_noise(self, e, n, temperature, gen):
        # Same draws as on the CPU: sample on a CPU copy of the mapper.
        import copy

        m = copy.deepcopy(self.mapper).cpu()
        return m.sample(e.cpu(), n, temperature, generator=gen)


class BaselinePipeline(Pipeline):
    """cvae / gan image baselines."""

    def __init__(self, kind: str, baseline, clip_model=None, device="cpu", clip_name: str = ""):
        super().__init__(device)
        self.name = kind
        self.model = baseline.to(self.device)
        self.clip = clip_model
        self.clip_name = clip_name

    def _generate(self, prompts, n, seed, timer, attributes: Sequence[dict] | None = None, batch_size: int = 64,
                  temperature: float = 1.0, **_):
        with timer("text"):
            if self.model.cond == "attr":
                if attributes is None:
                    # Raises the checkpoint's own message ("conditioned on attributes, not on text").
                    self.model.text_condition(self.clip, prompts)
                cond = self.model.attribute_condition(list(attributes))
            else:
                if self.clip is None:
                    raise UserError(f"{self.name}: this checkpoint is CLIP-text conditioned; pass --clip")
                ident = None
                if self.clip_name:
                    from model.clip_io import clip_identity

                    ident = clip_identity(self.clip_name)
                cond = self.model.text_condition(self.clip, prompts, clip_identity=ident)
        with timer("G"):
            return self.model.sample(cond.to(self.model.device), n, seed=seed, batch_size=int(batch_size or 64),
                                     temperature=float(temperature))


class ClipOptPipeline(Pipeline):
    """CLIP-guided latent optimisation (slow reference)."""

    name = "clip-opt"

    def __init__(self, G, clip_model, device="cpu"):
        super().__init__(device)
        self.G, self.clip = G, clip_model

    def _generate(self, prompts, n, seed, timer, steps: int = 50, batch_size: int = 16, progress: bool = False, **opts):
        from model.clip_opt import clip_opt_generate

        # Everything else (restarts, lr, pull toward w_avg, ...) keeps clip_opt_generate's defaults.
        kw = {k: opts[k] for k in ("restarts", "lr", "l2_weight", "init_psi", "wplus") if opts.get(k) is not None}
        with timer("optimise"), torch.enable_grad():
            return clip_opt_generate(self.G, self.clip, prompts, n, seed=seed, steps=int(steps),
                                     batch_size=int(batch_size or 16), progress=progress, **kw)


class UnconditionalPipeline(Pipeline, _GeneratorMixin):
    """The generator at truncation 1 (prompts ignored): the chance level of every metric."""

    name = "unconditional"
    uses_prompt = False

    def __init__(self, G, device="cpu"):
        super().__init__(device)
        self.G = G

    def _generate(self, prompts, n, seed, timer, batch_size: int = 64, trunc: float = 1.0, **_):
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(len(prompts) * n, self.G.z_dim, generator=gen).to(self.device)
        with timer("mapping"):
            w = torch.cat([self.G.mapping(z[i : i + 256], truncation_psi=1.0)[:, 0] for i in range(0, len(z), 256)])
        return self.synthesize(w, float(trunc), int(batch_size or 64), timer)


class RealPipeline(Pipeline):
    """Real test images carrying the prompted attributes (the ceiling of attribute accuracy)."""

    name = "real"
    uses_prompt = False

    def __init__(self, data: str, split: str = "test", resolution: int = 64, device="cpu"):
        super().__init__(device)
        from dataset.celeba import CelebADataset

        self.data = str(data)
        self.ds = CelebADataset(data, split, resolution=resolution)
        if len(self.ds) == 0:
            raise UserError(f"--data {data}: the '{split}' split is empty")
        self.attrs = torch.from_numpy(np.asarray(self.ds.attrs).astype(np.int8))
        self._images: torch.Tensor | None = None

    def images(self) -> torch.Tensor:
        if self._images is None:
            self._images = self.ds.images_uint8(progress=False)
        return self._images

    def _generate(self, prompts, n, seed, timer, attributes: Sequence[dict] | None = None, **_):
        from dataset.celeba import ATTR_INDEX

        if attributes is None:
            raise UserError("the 'real' reference needs the prompts' attributes (use it from `eval` with a prompt file)")
        gen = np.random.default_rng(seed)
        out = []
        with timer("select"):
            for p, attrs in enumerate(attributes):
                score = torch.zeros(len(self.attrs))
                for k, v in attrs.items():
                    if k not in ATTR_INDEX:
                        raise UserError(f"unknown attribute '{k}' in prompt {p + 1}")
                    score += (self.attrs[:, ATTR_INDEX[k]] == (1 if v > 0 else -1)).float()
                best = float(score.max())
                # All images matching every prompted attribute (or, failing that, the best matches).
                cand = torch.nonzero(score == best).flatten().numpy()
                pick = gen.choice(cand, size=n, replace=len(cand) < n)
                out.append(self.images()[torch.from_numpy(pick)])
        x = torch.cat(out)
        return x.float() / 127.5 - 1.0


# ---------------------------------------------------------------------------
# Building pipelines
# ---------------------------------------------------------------------------


def caption_set(n: int = 256, seed: int = 0) -> list[str]:
    """A fixed set of captions (random attribute combinations) whose mean text embedding the
    modality shift subtracts."""
    from dataset.captions import prompt_for
    from model.evaluate import random_attribute_sets

    rng = np.random.default_rng(seed)
    return [prompt_for(a) for a in random_attribute_sets(n, rng)]


class ModelCache:
    """Loads each generator / CLIP / checkpoint once, shared by several pipelines.

    ``compile=True`` wraps each loaded generator, CLIP and flow mapper with ``torch.compile``
    (``model/accel.py``): faster calls after a compilation on first use.
    """

    def __init__(self, device: str | torch.device = "cpu", compile: bool = False):
        self.device = _resolve_device(device)
        self.compile = bool(compile)
        if self.compile:
            from model.accel import check_compile_available

            check_compile_available(self.device)
        self._store: dict[tuple[str, str], Any] = {}

    def _get(self, kind: str, key: str, fn):
        k = (kind, str(key))
        if k not in self._store:
            obj = fn()
            if self.compile:
                from model import accel

                {"G": accel.compile_generator, "clip": accel.compile_clip, "mapper": accel.compile_mapper}.get(kind, lambda m: None)(obj)
            self._store[k] = obj
        return self._store[k]

    def generator(self, path: str | None):
        from model import load_generator

        path = str(path or _bundled("generator"))
        return path, self._get("G", path, lambda: load_generator(path, device=self.device))

    def clip(self, name: str | None):
        from model.clip_io import load_clip

        name = str(name or _bundled("clip"))
        return name, self._get("clip", name, lambda: load_clip(name, device=self.device))

    def mapper(self, kind: str, path: str | None):
        from model.mapper import load_mapper

        path = str(path or _bundled(kind))
        m = self._get("mapper", path, lambda: load_mapper(path, device=self.device))
        if getattr(m, "kind", kind) != kind:
            raise UserError(f"--mapper {path}: is a '{m.kind}' mapper checkpoint, but --model is '{kind}'")
        return path, m

    def baseline(self, kind: str, path: str | None):
        from model.baselines import load_baseline

        path = str(path or _bundled(kind))
        return path, self._get("baseline", path, lambda: load_baseline(path, device=self.device, expect_kind=kind))


def build_pipeline(
    model_name: str,
    clip: str | None = None,
    generator: str | None = None,
    mapper: str | None = None,
    device: str | torch.device = "cpu",
    data: str | None = None,
    cache: ModelCache | None = None,
    modality_shift: bool | None = None,
    compile: bool = False,
) -> Pipeline:
    """The pipeline of ``model_name`` (one of ``MODELS``).

    ``clip``: conditioning CLIP (OpenAI name or file); ``generator``: StyleGAN2 path or URL;
    ``mapper``: the method's own checkpoint (the mapper for flow / cvae-mapper, the baseline
    checkpoint for cvae / gan). Paths left out default to the bundled toy models.
    ``data``: CelebA-format folder for the 'real' reference.
    ``compile``: ``torch.compile`` the models (``model/accel.py``); applies when no ``cache`` is given.
    """
    name = str(model_name).strip()
    if name not in MODELS:
        raise UserError(f"unknown model '{model_name}'; choices: {', '.join(MODELS)}")
    cache = cache or ModelCache(device, compile=compile)
    dev = cache.device
    if name in MAPPER_KINDS:
        mpath, m = cache.mapper(name, mapper)
        cname, cm = cache.clip(clip)
        _, G = cache.generator(generator)
        return MapperPipeline(name, G, cm, m, dev, clip_name=cname, mapper_path=mpath, modality_shift=modality_shift)
    if name in BASELINE_KINDS:
        if generator is not None:
            raise UserError(f"--generator does not apply to '{name}' (an image baseline without StyleGAN2)")
        _, b = cache.baseline(name, mapper)
        cm, cname = None, ""
        if b.cond == "clip":
            cname, cm = cache.clip(clip)
        return BaselinePipeline(name, b, cm, dev, clip_name=cname)
    if name == "clip-opt":
        if mapper is not None:
            raise UserError("--mapper does not apply to 'clip-opt' (it optimises latents per prompt)")
        _, cm = cache.clip(clip)
        _, G = cache.generator(generator)
        return ClipOptPipeline(G, cm, dev)
    if name == "unconditional":
        _, G = cache.generator(generator)
        return UnconditionalPipeline(G, dev)
    # real
    if data is None:
        raise UserError("the 'real' reference needs --data DIR (a CelebA-format folder with a test split)")
    return RealPipeline(data, device=dev)


def save_grid(images: torch.Tensor, prompts: Sequence[str], n: int, out: str | os.PathLike, cell_scale: int = 1) -> Path:
    """Write the images as a grid, one row per prompt with the prompt written above it."""
    from torch_utils.misc import image_grid
    from torch_utils.persistence import atomic_write

    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"--out {out}: expected a .png or .jpg file name")
    grid = image_grid(images, ncols=n, row_labels=list(prompts), cell_scale=cell_scale)
    fmt = "PNG" if out.suffix.lower() == ".png" else "JPEG"
    atomic_write(out, lambda tmp: grid.save(tmp, format=fmt))
    return out


def generate_to_file(
    prompts: Sequence[str],
    n: int,
    seed: int,
    out: str | os.PathLike,
    model_name: str = "flow",
    clip: str | None = None,
    generator: str | None = None,
    mapper: str | None = None,
    device: str = "cpu",
    modality_shift: bool | None = None,
    compile: bool = False,
    **opts,
) -> dict[str, Any]:
    """``python main.py generate``: build the pipeline, generate, write the labelled grid; returns timing info."""
    image = opts.get("image")
    prompts = check_prompts(prompts, allow_empty_list=image is not None)
    if image is not None and model_name not in MAPPER_KINDS:
        raise UserError(f"--image works with the mappers ({', '.join(MAPPER_KINDS)}), not with '{model_name}'")
    pipe = build_pipeline(model_name, clip=clip, generator=generator, mapper=mapper, device=device,
                          modality_shift=modality_shift, compile=compile)
    if not pipe.uses_prompt and model_name == "real":
        raise UserError("'real' is an evaluation reference; use it from `python main.py eval`")
    images = pipe.generate(prompts, n, seed, **opts)
    labels = list(prompts) or [f"[image {Path(str(image)).name}]"]
    if image is not None and prompts:
        a = 0.5 if opts.get("mix") is None else float(opts["mix"])
        labels = [f"{p}  + image {Path(str(image)).name} (mix {a:g})" for p in prompts]
    if not pipe.uses_prompt:
        labels = [f"{p}  [{model_name}: prompt ignored]" for p in labels]
    scale = max(1, 64 // int(images.shape[-1]))
    save_grid(images, labels, n, out, cell_scale=scale)
    return pipe.last_info
