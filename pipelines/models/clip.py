"""CLIP text transformer (the SD1.x text encoder) and the TextEncoder object a FF_TEXT_ENCODER socket carries.

Module names equal transformers' ``CLIPTextModel`` names without the leading ``text_model.``
(``embeddings.token_embedding.weight``, ``encoder.layers.0.self_attn.q_proj.weight``, ``final_layer_norm``),
so SD checkpoints load after stripping ``cond_stage_model.transformer.text_model.``
(see ``pipelines.loading.clip_keys``).

Clip skip follows ComfyUI: ``clip_skip = n`` takes the hidden state after layer ``num_layers - n + 1``
(n=1: the last layer, n=2: the penultimate one) and applies the final layer norm to it.
"""

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ...kernels import attention
from .bundle import Conditioning


@dataclass(frozen=True)
class CLIPTextConfig:
    """Architecture of a CLIP text transformer. Defaults: CLIP ViT-L/14 text tower (SD1.x).

    A small trainable config: ``CLIPTextConfig(vocab_size=<your vocab>, hidden_size=64, num_layers=2,
    num_heads=2, intermediate_size=128, max_positions=77)``.
    """

    vocab_size: int = 49408
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 77
    hidden_act: str = "quick_gelu"  # "quick_gelu" | "gelu"
    layer_norm_eps: float = 1e-5
    bos_token_id: int = 49406
    eos_token_id: int = 49407
    pad_token_id: int = 49407  # SD1.x pads with the end token


def _activation(name: str):
    """The MLP activation by name."""
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    raise ValueError(f"CLIP hidden_act must be 'quick_gelu' or 'gelu', got {name!r}")


class CLIPEmbeddings(nn.Module):
    """Token plus learned absolute position embeddings."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.max_positions, cfg.hidden_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids ``[B, L]`` -> ``[B, L, D]``."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.token_embedding(ids) + self.position_embedding(positions)[None]


class CLIPAttention(nn.Module):
    """Multi-head causal self-attention with q/k/v/out projections."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        d = cfg.hidden_size
        if d % cfg.num_heads:
            raise ValueError(f"CLIP hidden_size {d} is not divisible by num_heads {cfg.num_heads}")
        self.num_heads = cfg.num_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x ``[B, L, D]``, boolean mask ``[B or 1, 1, L, L]`` (True = attend) -> ``[B, L, D]``."""
        q, k, v = (
            rearrange(p(x), "b l (h d) -> b h l d", h=self.num_heads) for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        out = attention(q, k, v, mask=mask)
        return self.out_proj(rearrange(out, "b h l d -> b l (h d)"))


class CLIPMLP(nn.Module):
    """fc1 -> activation -> fc2."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = _activation(cfg.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, D]`` -> ``[B, L, D]``."""
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = CLIPAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, L, D]`` -> ``[B, L, D]``."""
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    """The stack of encoder layers."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(cfg) for _ in range(cfg.num_layers))


class CLIPTextModel(nn.Module):
    """CLIP text transformer returning per-token embeddings (and optionally the pooled EOS embedding)."""

    def __init__(self, config: CLIPTextConfig = CLIPTextConfig()):
        super().__init__()
        self.config = config
        self.embeddings = CLIPEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, ids: torch.Tensor, clip_skip: int = 1, attention_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """ids ``[B, L]`` -> embeddings ``[B, L, D]`` from layer ``-clip_skip`` with the final layer norm.

        attention_mask: optional ``[B, L]`` (1 = real token) combined with the causal mask; SD1.x does
        not use one (padding is the end token and the mask is causal).
        """
        n = len(self.encoder.layers)
        if not 1 <= clip_skip <= n:
            raise ValueError(f"clip_skip must be in 1..{n}, got {clip_skip}")
        length = ids.shape[1]
        if length > self.config.max_positions:
            raise ValueError(f"CLIP takes at most {self.config.max_positions} tokens per chunk, got {length}")
        mask = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()[None, None]
        if attention_mask is not None:
            mask = mask & attention_mask.bool()[:, None, None, :]
        h = self.embeddings(ids)
        stop = n - clip_skip + 1
        for layer in self.encoder.layers[:stop]:
            h = layer(h, mask)
        return self.final_layer_norm(h)

    def pooled(self, ids: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """The embedding at each row's first end token, ``[B, D]`` (the CLIP pooled output)."""
        eos = (ids == self.config.eos_token_id).int().argmax(dim=1)
        return embeds[torch.arange(ids.shape[0], device=ids.device), eos]


class TextEncoder:
    """What a FF_TEXT_ENCODER socket carries: tokenizer + CLIP model + clip skip.

    ``encode(prompt)`` tokenizes into 77-token chunks with weights (see ``pipelines.models.tokenizers``),
    runs each chunk, applies the weights ComfyUI's way (``z = empty + (z - empty) * weight``, where
    ``empty`` is the embedding of the empty prompt at the same position) and concatenates the chunks
    along L. Returns a :class:`Conditioning` with embeds ``[1, 77 * chunks, D]``.
    """

    def __init__(self, tokenizer, model: CLIPTextModel, clip_skip: int = 1, name: str = ""):
        self.tokenizer = tokenizer
        self.model = model
        self.clip_skip = clip_skip
        self.name = name

    def with_clip_skip(self, clip_skip: int) -> "TextEncoder":
        """A copy that uses another clip skip (the model is shared)."""
        return TextEncoder(self.tokenizer, self.model, clip_skip, self.name)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode_chunks(self, chunks: Sequence[Any]) -> torch.Tensor:
        """Token chunks (``TokenChunk`` list) -> weighted embeddings ``[1, 77 * len(chunks), D]`` float32."""
        ids = torch.tensor([c.ids for c in chunks], dtype=torch.long, device=self.device)
        weights = torch.tensor([c.weights for c in chunks], dtype=torch.float32)
        z = self.model(ids, clip_skip=self.clip_skip).float().cpu()
        if (weights != 1.0).any():
            empty = self.tokenizer.tokenize("")[0]
            empty_ids = torch.tensor([empty.ids], dtype=torch.long, device=self.device)
            z_empty = self.model(empty_ids, clip_skip=self.clip_skip).float().cpu()
            w = weights[..., None]
            z = torch.where(w != 1.0, z_empty + (z - z_empty) * w, z)
        return rearrange(z, "n l d -> 1 (n l) d")

    def encode(self, prompt: str) -> Conditioning:
        """Prompt (with ``(word:1.2)`` emphasis) -> :class:`Conditioning` ``[1, 77*n, D]``."""
        return Conditioning(embeds=self.encode_chunks(self.tokenizer.tokenize(prompt)), prompt=prompt)

    def encode_many(self, prompts: List[str]) -> Conditioning:
        """One prompt per frame -> ``[F, L, D]``; shorter prompts are padded with extra empty chunks."""
        embeds = [self.encode(p).embeds for p in prompts]
        longest = max(e.shape[1] for e in embeds)
        empty = self.encode("").embeds
        padded = [torch.cat([e] + [empty] * ((longest - e.shape[1]) // empty.shape[1]), dim=1) for e in embeds]
        return Conditioning(embeds=torch.cat(padded), prompt="\n".join(prompts))
