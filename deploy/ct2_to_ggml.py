#!/usr/bin/env python3
"""Turns a Whisper model in CTranslate2 format into a whisper.cpp ggml file.

    ct2_to_ggml.py --model-bin model.bin [more parts ...] \
                   --vocabulary vocabulary.txt \
                   --assets openai_whisper-*.tar.gz \
                   --out ggml-base.bin

Python standard library only: the CTranslate2 weights we convert are float16,
which is what ggml stores for matrices, so most tensors are byte slices of the
input; the few float32 tensors go through struct's half-float codec, which is
exact. Output bytes depend only on the inputs, so the caller can pin the
result's sha256.

Input, CTranslate2 `model.bin` (binary version 6, little-endian):
    u32 version, str spec name, u32 spec revision, u32 variable count,
    per variable: str name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count,
    raw data; then u32 alias count, per alias: str alias, str target.
    A str is u16 length (with the trailing NUL), bytes, NUL.
    dtype: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
A model split into parts is the byte concatenation of the parts.

Output, whisper.cpp ggml (i32 little-endian unless said otherwise):
    magic "ggml" (0x67676d6c); n_vocab, n_audio_ctx, n_audio_state,
    n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
    n_text_layer, n_mels; ftype (1: matrices in f16);
    mel filter bank: n_mels, n_fft, f32[n_mels * n_fft];
    token list: count, per token: length, bytes (the tiktoken ranks in order;
    whisper.cpp derives the special tokens from n_vocab);
    tensors until end of file: rank, name length, type (0 f32, 1 f16),
    dims innermost first, name, raw data (row-major).
"""

import argparse
import ast
import base64
import io
import os
import struct
import sys
import tarfile
import zipfile

GGML_MAGIC = 0x67676D6C
CT2_BINARY_VERSION = 6
CT2_F32, CT2_I8, CT2_I16, CT2_I32, CT2_F16, CT2_BF16 = range(6)
CT2_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
GGML_F32, GGML_F16 = 0, 1


class ConversionError(Exception):
    pass


def log(msg):
    print("[ct2_to_ggml] " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- CTranslate2


class Ct2Var:
    __slots__ = ("name", "dims", "dtype", "data")

    def __init__(self, name, dims, dtype, data):
        self.name, self.dims, self.dtype, self.data = name, dims, dtype, data

    def scalar(self):
        if self.dims:
            raise ConversionError(f"{self.name}: expected a scalar, got shape {self.dims}")
        fmt = {CT2_I8: "<b", CT2_I16: "<h", CT2_I32: "<i", CT2_F32: "<f"}.get(self.dtype)
        if fmt is None:
            raise ConversionError(f"{self.name}: unexpected scalar type {self.dtype}")
        return struct.unpack(fmt, self.data)[0]


def read_ct2(parts):
    """Parses model.bin (possibly in parts) into {name: Ct2Var}, aliases resolved."""
    blob = bytearray()
    for part in parts:
        with open(part, "rb") as f:
            blob += f.read()
    buf = memoryview(bytes(blob))
    del blob
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise ConversionError("model.bin is truncated (is a part missing?)")
        chunk = buf[pos : pos + n]
        pos += n
        return chunk

    def unpack(fmt):
        return struct.unpack(fmt, take(struct.calcsize(fmt)))

    def string():
        (n,) = unpack("<H")
        raw = bytes(take(n))
        if not raw.endswith(b"\0"):
            raise ConversionError("model.bin: malformed string")
        return raw[:-1].decode("utf-8")

    (version,) = unpack("<I")
    if version != CT2_BINARY_VERSION:
        raise ConversionError(
            f"model.bin binary version {version}, this converter reads {CT2_BINARY_VERSION}"
        )
    spec = string()
    (revision,) = unpack("<I")
    if spec != "WhisperSpec":
        raise ConversionError(f"model.bin holds a {spec}, not a WhisperSpec")
    (count,) = unpack("<I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = unpack("<B")
        dims = unpack("<" + "I" * rank) if rank else ()
        (dtype,) = unpack("<B")
        (nbytes,) = unpack("<I")
        variables[name] = Ct2Var(name, tuple(dims), dtype, take(nbytes))
    (n_alias,) = unpack("<I")
    for _ in range(n_alias):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if pos != len(buf):
        raise ConversionError(f"model.bin has {len(buf) - pos} unexpected trailing bytes")
    log(f"read {spec} revision {revision}: {count} variables, {n_alias} aliases")
    return variables


# ------------------------------------------------------------ whisper assets


def read_assets(path):
    """mel_filters.npz and the two .tiktoken files from the openai-whisper
    sdist (a .tar.gz) or from a directory holding whisper/assets/."""
    wanted = ("mel_filters.npz", "gpt2.tiktoken", "multilingual.tiktoken")
    found = {}
    if os.path.isdir(path):
        for name in wanted:
            p = os.path.join(path, "whisper", "assets", name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    found[name] = f.read()
    else:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                head, _, name = member.name.rpartition("/")
                if name in wanted and head.endswith("whisper/assets") and member.isfile():
                    found[name] = tar.extractfile(member).read()
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ConversionError(f"{path}: no whisper/assets/{', '.join(missing)}")
    return found


def npz_array(npz_bytes, key):
    """One float32 C-order array from an .npz (zip of .npy), as (shape, bytes)."""
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as z:
        try:
            raw = z.read(key + ".npy")
        except KeyError:
            raise ConversionError(f"mel_filters.npz has no {key}") from None
    if raw[:6] != b"\x93NUMPY":
        raise ConversionError(f"{key}.npy: not a .npy file")
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", raw[8:10])
        start = 10
    else:
        (hlen,) = struct.unpack("<I", raw[8:12])
        start = 12
    header = ast.literal_eval(raw[start : start + hlen].decode("latin1"))
    if header.get("descr") != "<f4" or header.get("fortran_order"):
        raise ConversionError(f"{key}.npy: expected C-order <f4, got {header}")
    shape = tuple(header["shape"])
    data = raw[start + hlen :]
    if len(data) != 4 * shape[0] * shape[1]:
        raise ConversionError(f"{key}.npy: size does not match shape {shape}")
    return shape, data


def tiktoken_ranks(text):
    """Token byte strings in rank order; ranks must run 0..n-1."""
    tokens = []
    for line in text.splitlines():
        if not line.strip():
            continue
        b64, rank = line.split()
        if int(rank) != len(tokens):
            raise ConversionError(f"tiktoken rank {rank} out of order")
        tokens.append(base64.b64decode(b64))
    return tokens


def byte_level_alphabet():
    """GPT-2's byte-level BPE spelling: printable bytes stand for themselves,
    the other 68 byte values are moved to code points from 256 upwards."""
    printable = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    decode = {}
    extra = 0
    for b in range(256):
        if b in printable:
            decode[chr(b)] = b
        else:
            decode[chr(256 + extra)] = b
            extra += 1
    return decode


def check_vocabulary(path, tokens, n_vocab):
    """vocabulary.txt (CTranslate2) must spell the same tokens as tiktoken."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != n_vocab:
        raise ConversionError(f"{path}: {len(lines)} tokens, the model has {n_vocab}")
    decode = byte_level_alphabet()
    for i, tok in enumerate(tokens):
        try:
            spelled = bytes(decode[c] for c in lines[i])
        except KeyError:
            raise ConversionError(f"{path}: token {i} {lines[i]!r} is not byte-level BPE") from None
        if spelled != tok:
            raise ConversionError(f"{path}: token {i} is {spelled!r}, tiktoken says {tok!r}")


# ------------------------------------------------------------------ tensors


def as_f16(var, rows=None):
    """Raw float16 bytes of `var` (optionally a row range of its first dim)."""
    data = var.data
    if rows is not None:
        row_elems = 1
        for d in var.dims[1:]:
            row_elems *= d
        elem = 2 if var.dtype == CT2_F16 else 4
        data = data[rows[0] * row_elems * elem : rows[1] * row_elems * elem]
    if var.dtype == CT2_F16:
        return bytes(data)
    if var.dtype == CT2_F32:
        n = len(data) // 4
        return struct.pack(f"<{n}e", *struct.unpack(f"<{n}f", data))
    raise ConversionError(
        f"{var.name}: {CT2_DTYPE_NAMES.get(var.dtype, var.dtype)} weights are not supported "
        "(need a float16 or float32 CTranslate2 model, not a quantized one)"
    )


def as_f32(var, rows=None):
    data = var.data
    if rows is not None:
        elem = 2 if var.dtype == CT2_F16 else 4
        data = data[rows[0] * elem : rows[1] * elem]  # only 1-D tensors are sliced here
    if var.dtype == CT2_F32:
        return bytes(data)
    if var.dtype == CT2_F16:
        n = len(data) // 2
        return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", data))
    raise ConversionError(f"{var.name}: unsupported type {var.dtype}")


class GgmlWriter:
    def __init__(self, out):
        self.out = out
        self.count = 0

    def tensor(self, name, shape, ggml_type, data):
        elems = 1
        for d in shape:
            elems *= d
        if len(data) != elems * (4 if ggml_type == GGML_F32 else 2):
            raise ConversionError(f"{name}: {len(data)} bytes for shape {shape}")
        raw = name.encode("utf-8")
        self.out.write(struct.pack("<iii", len(shape), len(raw), ggml_type))
        self.out.write(struct.pack(f"<{len(shape)}i", *reversed(shape)))
        self.out.write(raw)
        self.out.write(data)
        self.count += 1


def convert(variables, tokens, mel, out):
    def var(name):
        try:
            return variables[name]
        except KeyError:
            raise ConversionError(f"model.bin has no {name}") from None

    def layers(prefix):
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
            n += 1
        return n

    emb = var("decoder/embeddings/weight")
    conv1 = var("encoder/conv1/weight")
    enc_pos = var("encoder/position_encodings/encodings")
    dec_pos = var("decoder/position_encodings/encodings")
    n_vocab, n_text_state = emb.dims
    n_audio_ctx, n_audio_state = enc_pos.dims
    n_text_ctx = dec_pos.dims[0]
    n_mels = conv1.dims[1]
    hp = {
        "n_vocab": n_vocab,
        "n_audio_ctx": n_audio_ctx,
        "n_audio_state": n_audio_state,
        "n_audio_head": var("encoder/num_heads").scalar(),
        "n_audio_layer": layers("encoder"),
        "n_text_ctx": n_text_ctx,
        "n_text_state": n_text_state,
        "n_text_head": var("decoder/num_heads").scalar(),
        "n_text_layer": layers("decoder"),
        "n_mels": n_mels,
    }
    log("hyper-parameters " + ", ".join(f"{k}={v}" for k, v in hp.items()))
    (mel_rows, mel_cols), mel_data = mel
    if mel_rows != n_mels:
        raise ConversionError(f"mel filters have {mel_rows} rows, the model {n_mels} mels")

    out.write(struct.pack("<i", GGML_MAGIC))
    out.write(struct.pack("<10i", *hp.values()))
    out.write(struct.pack("<i", 1))  # ftype: f16 matrices
    out.write(struct.pack("<ii", mel_rows, mel_cols))
    out.write(mel_data)
    out.write(struct.pack("<i", len(tokens)))
    for tok in tokens:
        out.write(struct.pack("<i", len(tok)))
        out.write(tok)

    w = GgmlWriter(out)

    def matrix(name, v, rows=None):
        shape = v.dims if rows is None else (rows[1] - rows[0],) + v.dims[1:]
        w.tensor(name, shape, GGML_F16, as_f16(v, rows))

    def vector(name, v, rows=None, shape=None):
        n = v.dims[0] if rows is None else rows[1] - rows[0]
        w.tensor(name, shape or (n,), GGML_F32, as_f32(v, rows))

    def norm(dst, src):
        vector(dst + ".weight", var(src + "/gamma"))
        vector(dst + ".bias", var(src + "/beta"))

    def linear(dst, src, rows=None, bias=True):
        matrix(dst + ".weight", var(src + "/weight"), rows)
        if bias:
            vector(dst + ".bias", var(src + "/bias"), rows)

    def qkv(dst, src, d):
        # CTranslate2 stacks query, key and value along the output dimension;
        # Whisper's key projection has no bias (CTranslate2 stores zeros there).
        linear(dst + ".query", src, (0, d))
        linear(dst + ".key", src, (d, 2 * d), bias=False)
        linear(dst + ".value", src, (2 * d, 3 * d))

    def mlp(dst, src):
        norm(dst + ".mlp_ln", src + "/layer_norm")
        linear(dst + ".mlp.0", src + "/linear_0")
        linear(dst + ".mlp.2", src + "/linear_1")

    # Encoder. Positional embeddings and conv biases stay f32 (whisper.cpp adds
    # them to f32 activations); conv biases are stored as [n, 1].
    d = n_audio_state
    w.tensor("encoder.positional_embedding", enc_pos.dims, GGML_F32, as_f32(enc_pos))
    for i in (1, 2):
        matrix(f"encoder.conv{i}.weight", var(f"encoder/conv{i}/weight"))
        bias = var(f"encoder/conv{i}/bias")
        vector(f"encoder.conv{i}.bias", bias, shape=(bias.dims[0], 1))
    for i in range(hp["n_audio_layer"]):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        qkv(dst + ".attn", src + "/self_attention/linear_0", d)
        linear(dst + ".attn.out", src + "/self_attention/linear_1")
        norm(dst + ".attn_ln", src + "/self_attention/layer_norm")
        mlp(dst, src + "/ffn")
    norm("encoder.ln_post", "encoder/layer_norm")

    # Decoder. The output projection is the token embedding (CTranslate2 keeps
    # it as an alias, whisper.cpp reuses the embedding).
    d = n_text_state
    w.tensor("decoder.positional_embedding", dec_pos.dims, GGML_F32, as_f32(dec_pos))
    matrix("decoder.token_embedding.weight", emb)
    for i in range(hp["n_text_layer"]):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        qkv(dst + ".attn", src + "/self_attention/linear_0", d)
        linear(dst + ".attn.out", src + "/self_attention/linear_1")
        norm(dst + ".attn_ln", src + "/self_attention/layer_norm")
        # Cross-attention: linear_0 query, linear_1 key and value stacked.
        linear(dst + ".cross_attn.query", src + "/attention/linear_0")
        linear(dst + ".cross_attn.key", src + "/attention/linear_1", (0, d), bias=False)
        linear(dst + ".cross_attn.value", src + "/attention/linear_1", (d, 2 * d))
        linear(dst + ".cross_attn.out", src + "/attention/linear_2")
        norm(dst + ".cross_attn_ln", src + "/attention/layer_norm")
        mlp(dst, src + "/ffn")
    norm("decoder.ln", "decoder/layer_norm")
    return hp, w.count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-bin", nargs="+", required=True, help="model.bin or its parts, in order")
    ap.add_argument("--vocabulary", required=True, help="CTranslate2 vocabulary.txt")
    ap.add_argument("--assets", required=True, help="openai-whisper sdist or source dir")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    try:
        assets = read_assets(args.assets)
        variables = read_ct2(args.model_bin)
        if "decoder/embeddings/weight" not in variables:
            raise ConversionError("model.bin has no decoder/embeddings/weight")
        n_vocab = variables["decoder/embeddings/weight"].dims[0]
        # Whisper's multilingual vocabulary has one more regular token (51865
        # entries in all); English-only models use GPT-2's.
        vocab_file = "multilingual.tiktoken" if n_vocab >= 51865 else "gpt2.tiktoken"
        tokens = tiktoken_ranks(assets[vocab_file].decode("ascii"))
        check_vocabulary(args.vocabulary, tokens, n_vocab)
        n_mels = variables["encoder/conv1/weight"].dims[1]
        mel = npz_array(assets["mel_filters.npz"], f"mel_{n_mels}")
        tmp = args.out + ".tmp"
        with open(tmp, "wb") as f:
            _, count = convert(variables, tokens, mel, f)
        os.replace(tmp, args.out)
    except (ConversionError, OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        log(f"error: {e}")
        return 1
    log(f"wrote {args.out}: {count} tensors, {len(tokens)} tokens ({vocab_file}), "
        f"{os.path.getsize(args.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
