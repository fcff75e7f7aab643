"""A small decoder-only (causal) transformer over a flattened map of discrete codes.

Tokens are read in raster order; position t is predicted from a start token and tokens < t, so
p(c) = Π_t p(c_t | c_<t) (an autoregressive prior, as the VQ-VAE paper's PixelCNN, with a
receptive field over the whole prefix and no blind spot). Pre-norm blocks, learned positions, and a
key/value cache so that drawing L tokens costs L single-token steps instead of L full passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Cache = list[dict[str, torch.Tensor]]  # per block: keys and values of the positions seen so far


class Block(nn.Module):
    """x + Attention(LN(x)); x + MLP(LN(x)), attention restricted to earlier positions."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer dim={dim} must be divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:  # new positions come after the cached ones: they may see all of them
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        causal = t > 1  # one new query attends to every cached key; several need the causal mask
        if causal and k.shape[2] != t:
            raise ValueError("with a non-empty cache, feed one token at a time")
        dropout = self.dropout if self.training else 0.0
        h = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)
        x = x + self.drop(self.proj(h.transpose(1, 2).reshape(n, t, d)))
        return x + self.mlp(self.norm2(x))


class CausalTransformer(nn.Module):
    """tokens [N, t] (0 <= t < seq_len) -> logits [N, t + 1, vocab_size].

    Row i of the output is the distribution of token i given tokens[:, :i]; so training feeds
    tokens[:, :-1] and compares with tokens. Sampling uses :meth:`step` with a cache instead.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.start = vocab_size  # an extra token id that opens every sequence
        self.embed = nn.Embedding(vocab_size + 1, dim)
        self.position = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, t = tokens.shape
        if t >= self.seq_len or tokens.dtype != torch.long:
            raise ValueError(f"expected long tokens [N, t] with t < {self.seq_len}, got {tuple(tokens.shape)}")
        start = torch.full((n, 1), self.start, dtype=torch.long, device=tokens.device)
        h = self.embed(torch.cat([start, tokens], dim=1)) + self.position[:, : t + 1]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def new_cache(self) -> Cache:
        return [{} for _ in self.blocks]

    def step(self, token: torch.Tensor | None, cache: Cache, n: int = 1) -> torch.Tensor:
        """Logits [N, vocab] of the next position given the previous ``token`` [N] (None: the first
        position, for ``n`` sequences) and the ``cache`` of everything before it."""
        position = cache[0]["k"].shape[2] if cache[0] else 0
        if token is None:
            token = torch.full((n,), self.start, dtype=torch.long, device=self.position.device)
        h = self.embed(token[:, None]) + self.position[:, position : position + 1]
        for block, block_cache in zip(self.blocks, cache):
            h = block(h, block_cache)
        return self.head(self.norm(h))[:, 0]
