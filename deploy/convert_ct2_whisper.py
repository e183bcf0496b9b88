#!/usr/bin/env python3
"""Convert a Whisper model in CTranslate2 format into a whisper.cpp ggml file.

Standard library only (no numpy, no torch): the CTranslate2 weights we use are
already float16, which is what the ggml file stores for matrices, so tensors are
mostly sliced byte buffers; the few float32 tensors are converted with struct.

Inputs
  --model-bin FILE [FILE ...]  CTranslate2 model.bin; several files are read as
                               one concatenated stream (a model split in parts)
  --config config.json         CTranslate2 config (sanity checks only)
  --vocabulary vocabulary.txt  CTranslate2 vocabulary (checked against tiktoken)
  --whisper-sdist FILE         openai-whisper sdist (.tar.gz) or a directory
                               holding whisper/assets: mel_filters.npz and the
                               gpt2 / multilingual .tiktoken vocabularies
  --out ggml-*.bin             written atomically (tmp file + rename)

  --verify ggml-*.bin          only parse an existing ggml file and check that
                               it is complete; exit 0 if it is, 1 if not

ggml layout written (all integers int32 little-endian):
  magic 0x67676d6c; n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
  n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels;
  ftype (1 = f16 matrices);
  mel filters: n_mel, n_fft, then n_mel*n_fft float32;
  tokens: count, then per token: byte length, bytes (ids 0..count-1; the
  special tokens are implied by whisper.cpp from n_vocab);
  tensors until EOF: n_dims, name length, type (0 f32, 1 f16),
  dims innermost first, name, raw data.
"""

import argparse
import ast
import base64
import io
import json
import os
import re
import struct
import sys
import tarfile
import zipfile

GGML_MAGIC = 0x67676D6C
F32, F16 = 0, 1

# CTranslate2 DataType enum order (include/ctranslate2/types.h)
CT2_DTYPES = ["float32", "int8", "int16", "int32", "float16", "bfloat16"]
CT2_ITEMSIZE = {"float32": 4, "int8": 1, "int16": 2, "int32": 4, "float16": 2, "bfloat16": 2}


def die(msg):
    print(f"convert_ct2_whisper: error: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------
# CTranslate2 model.bin reader
#
# u32 binary_version (>= 2 here), string spec_name, u32 spec_revision,
# u32 n_variables, then per variable:
#   string name, u8 rank, u32 dims[rank], u8 dtype (version >= 4; before that
#   a u32 item size), u32 n_bytes, bytes
# then (version >= 3) u32 n_aliases, per alias: string alias, string target.
# A string is u16 length (including a trailing NUL) followed by the bytes.
# --------------------------------------------------------------------------
class Tensor:
    __slots__ = ("name", "shape", "dtype", "data")

    def __init__(self, name, shape, dtype, data):
        self.name, self.shape, self.dtype, self.data = name, tuple(shape), dtype, data

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def scalar(self):
        fmt = {"int8": "<b", "int16": "<h", "int32": "<i", "float32": "<f"}[self.dtype]
        return struct.unpack(fmt, bytes(self.data))[0]


def read_ct2(buf):
    mv = memoryview(buf)
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(mv):
            die("model.bin is truncated (parts missing or joined in the wrong order?)")
        out = mv[pos:pos + n]
        pos += n
        return out

    def u(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize("<" + fmt)))

    def string():
        (n,) = u("H")
        return bytes(take(n)).rstrip(b"\0").decode("utf-8")

    (version,) = u("I")
    if not 1 <= version <= 6:
        die(f"unsupported CTranslate2 binary version {version} (not a model.bin?)")
    spec, revision = "", 1
    if version >= 2:
        spec = string()
        (revision,) = u("I")
    (n_vars,) = u("I")
    tensors = {}
    for _ in range(n_vars):
        name = string()
        (rank,) = u("B")
        shape = u("I" * rank) if rank else ()
        if version >= 4:
            (tid,) = u("B")
            dtype = CT2_DTYPES[tid]
        else:
            (itemsize,) = u("I")
            dtype = {4: "float32", 2: "int16", 1: "int8"}[itemsize]
        (nbytes,) = u("I")
        data = take(nbytes)
        t = Tensor(name, shape, dtype, data)
        if t.numel() * CT2_ITEMSIZE[dtype] != nbytes:
            die(f"{name}: {nbytes} bytes for shape {shape} {dtype}")
        tensors[name] = t
    aliases = {}
    if version >= 3:
        (n_alias,) = u("I")
        for _ in range(n_alias):
            alias = string()
            aliases[alias] = string()
    if pos != len(mv):
        die(f"{len(mv) - pos} trailing bytes after the model (wrong parts?)")
    return spec, revision, tensors, aliases


# --------------------------------------------------------------------------
# float helpers (struct 'e' is IEEE half precision)
# --------------------------------------------------------------------------
def as_f32_bytes(t):
    if t.dtype == "float32":
        return bytes(t.data)
    if t.dtype == "float16":
        n = t.numel()
        return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", t.data))
    die(f"{t.name}: unsupported dtype {t.dtype} (use a float16/float32 CTranslate2 model)")


def as_f16_bytes(t):
    if t.dtype == "float16":
        return bytes(t.data)
    if t.dtype == "float32":
        n = t.numel()
        return struct.pack(f"<{n}e", *struct.unpack(f"<{n}f", t.data))
    die(f"{t.name}: unsupported dtype {t.dtype} (use a float16/float32 CTranslate2 model)")


def split_rows(t, parts):
    """Split a row-major [parts*n, ...] tensor into `parts` tensors of n rows."""
    rows = t.shape[0]
    if rows % parts:
        die(f"{t.name}: {rows} rows do not split in {parts}")
    n = rows // parts
    per = len(t.data) // parts
    return [Tensor(f"{t.name}[{i}]", (n,) + t.shape[1:], t.dtype, t.data[i * per:(i + 1) * per])
            for i in range(parts)]


def max_abs(t):
    n = t.numel()
    fmt = {"float16": "e", "float32": "f"}[t.dtype]
    return max((abs(v) for v in struct.unpack(f"<{n}{fmt}", t.data)), default=0.0)


# --------------------------------------------------------------------------
# openai-whisper assets (mel filters, tiktoken vocabularies)
# --------------------------------------------------------------------------
def read_assets(src):
    """Return {basename: bytes} for the files in whisper/assets."""
    wanted = ("mel_filters.npz", "gpt2.tiktoken", "multilingual.tiktoken")
    found = {}
    if os.path.isdir(src):
        for root, _, files in os.walk(src):
            for f in files:
                if f in wanted and root.replace(os.sep, "/").endswith("whisper/assets"):
                    with open(os.path.join(root, f), "rb") as fh:
                        found[f] = fh.read()
    else:
        with tarfile.open(src, "r:*") as tar:
            for m in tar.getmembers():
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted and m.name.endswith("whisper/assets/" + base):
                    found[base] = tar.extractfile(m).read()
    missing = [w for w in wanted if w not in found]
    if missing:
        die(f"{src}: whisper/assets lacks {', '.join(missing)}")
    return found


def read_npy(raw):
    """Minimal .npy reader for a C-order little-endian float array."""
    if raw[:6] != b"\x93NUMPY":
        die("mel filters: not an .npy array")
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", raw[8:10])
        start = 10
    else:
        (hlen,) = struct.unpack("<I", raw[8:12])
        start = 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    body = raw[start + hlen:]
    if header.get("fortran_order"):
        die("mel filters: fortran-order array not supported")
    shape = tuple(header["shape"])
    n = 1
    for d in shape:
        n *= d
    descr = header["descr"]
    if descr == "<f4":
        vals = struct.unpack(f"<{n}f", body[:4 * n])
    elif descr == "<f8":
        vals = struct.unpack(f"<{n}d", body[:8 * n])
    else:
        die(f"mel filters: unsupported dtype {descr}")
    return shape, vals


def mel_filters(npz_bytes, n_mels):
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as z:
        key = f"mel_{n_mels}.npy"
        if key not in z.namelist():
            die(f"mel_filters.npz has no {key} (has {z.namelist()})")
        shape, vals = read_npy(z.read(key))
    if len(shape) != 2 or shape[0] != n_mels:
        die(f"mel filters: unexpected shape {shape}")
    return shape, struct.pack(f"<{len(vals)}f", *vals)


def tiktoken_tokens(raw):
    toks = []
    for i, line in enumerate(l for l in raw.splitlines() if l):
        b64, rank = line.split()
        if int(rank) != i:
            die("tiktoken file is not in rank order")
        toks.append(base64.b64decode(b64))
    return toks


def gpt2_byte_decoder():
    """Inverse of GPT-2's byte -> printable unicode mapping (vocabulary.txt form)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def check_vocabulary(path, tokens, n_vocab):
    """The CTranslate2 vocabulary (ids = line numbers) must agree with tiktoken."""
    with open(path, encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    if len(vocab) != n_vocab:
        die(f"{path}: {len(vocab)} entries, model has n_vocab {n_vocab}")
    dec = gpt2_byte_decoder()
    for i, tok in enumerate(tokens):
        try:
            b = bytes(dec[c] for c in vocab[i])
        except KeyError:
            die(f"{path}: line {i + 1} is not a byte-level BPE token")
        if b != tok:
            die(f"{path}: token {i} is {b!r}, tiktoken says {tok!r} (wrong tokenizer assets?)")
    if vocab[len(tokens)] != "<|endoftext|>":
        die(f"{path}: id {len(tokens)} should be <|endoftext|>, is {vocab[len(tokens)]!r}")


# --------------------------------------------------------------------------
# CTranslate2 -> OpenAI names
# --------------------------------------------------------------------------
def count_layers(ct2, side):
    idx = {int(m.group(1)) for n in ct2 for m in [re.match(rf"{side}/layer_(\d+)/", n)] if m}
    if not idx or idx != set(range(len(idx))):
        die(f"{side} layers are not numbered 0..n-1")
    return len(idx)


def map_tensors(ct2, aliases):
    """Yield (openai_name, Tensor) in checkpoint order; verify every CT2 variable is used."""
    used = set()

    def get(name):
        if name not in ct2:
            die(f"model.bin lacks {name} (not a CTranslate2 Whisper model?)")
        used.add(name)
        return ct2[name]

    def lin(dst, src, bias=True):
        yield f"{dst}.weight", get(f"{src}/weight")
        if bias:
            yield f"{dst}.bias", get(f"{src}/bias")

    def ln(dst, src):
        yield f"{dst}.weight", get(f"{src}/gamma")
        yield f"{dst}.bias", get(f"{src}/beta")

    def qkv(dst, src):
        q, k, v = split_rows(get(f"{src}/weight"), 3)
        qb, kb, vb = split_rows(get(f"{src}/bias"), 3)
        if max_abs(kb) > 1e-6:
            die(f"{src}: key bias is not zero; Whisper's key projection has none")
        yield f"{dst}.query.weight", q
        yield f"{dst}.query.bias", qb
        yield f"{dst}.key.weight", k
        yield f"{dst}.value.weight", v
        yield f"{dst}.value.bias", vb

    def kv(dst, src):
        k, v = split_rows(get(f"{src}/weight"), 2)
        kb, vb = split_rows(get(f"{src}/bias"), 2)
        if max_abs(kb) > 1e-6:
            die(f"{src}: key bias is not zero; Whisper's key projection has none")
        yield f"{dst}.key.weight", k
        yield f"{dst}.value.weight", v
        yield f"{dst}.value.bias", vb

    def stream():
        yield "encoder.positional_embedding", get("encoder/position_encodings/encodings")
        yield from lin("encoder.conv1", "encoder/conv1")
        yield from lin("encoder.conv2", "encoder/conv2")
        for i in range(count_layers(ct2, "encoder")):
            s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
            yield from qkv(f"{d}.attn", f"{s}/self_attention/linear_0")
            yield from lin(f"{d}.attn.out", f"{s}/self_attention/linear_1")
            yield from ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
            yield from lin(f"{d}.mlp.0", f"{s}/ffn/linear_0")
            yield from lin(f"{d}.mlp.2", f"{s}/ffn/linear_1")
            yield from ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
        yield from ln("encoder.ln_post", "encoder/layer_norm")
        yield "decoder.positional_embedding", get("decoder/position_encodings/encodings")
        yield "decoder.token_embedding.weight", get("decoder/embeddings/weight")
        for i in range(count_layers(ct2, "decoder")):
            s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
            yield from qkv(f"{d}.attn", f"{s}/self_attention/linear_0")
            yield from lin(f"{d}.attn.out", f"{s}/self_attention/linear_1")
            yield from ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
            yield from lin(f"{d}.cross_attn.query", f"{s}/attention/linear_0")
            yield from kv(f"{d}.cross_attn", f"{s}/attention/linear_1")
            yield from lin(f"{d}.cross_attn.out", f"{s}/attention/linear_2")
            yield from ln(f"{d}.cross_attn_ln", f"{s}/attention/layer_norm")
            yield from lin(f"{d}.mlp.0", f"{s}/ffn/linear_0")
            yield from lin(f"{d}.mlp.2", f"{s}/ffn/linear_1")
            yield from ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
        yield from ln("decoder.ln", "decoder/layer_norm")

    out = list(stream())
    # The output projection is tied to the token embedding (whisper.cpp reuses it).
    proj = "decoder/projection/weight"
    if proj in ct2:
        die(f"{proj} is stored separately; only a tied projection is supported")
    if aliases.get(proj) != "decoder/embeddings/weight":
        die(f"{proj} is not an alias of decoder/embeddings/weight")
    scalars = {n for n, t in ct2.items() if t.shape == ()}
    left = set(ct2) - used - scalars
    if left:
        die("unmapped CTranslate2 variables: " + ", ".join(sorted(left)))
    return out


def ggml_type(name, ndims):
    if ndims < 2 or name in ("encoder.conv1.bias", "encoder.conv2.bias",
                             "encoder.positional_embedding", "decoder.positional_embedding"):
        return F32
    return F16


# --------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------
def convert(args):
    buf = bytearray()
    for part in args.model_bin:
        with open(part, "rb") as f:
            buf += f.read()
    spec, revision, ct2, aliases = read_ct2(buf)
    if spec and spec != "WhisperSpec":
        die(f"model.bin holds a {spec}, not a WhisperSpec")

    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)

    emb = ct2["decoder/embeddings/weight"]
    enc_pos = ct2["encoder/position_encodings/encodings"]
    dec_pos = ct2["decoder/position_encodings/encodings"]
    conv1 = ct2["encoder/conv1/weight"]
    hp = {
        "n_vocab": emb.shape[0],
        "n_audio_ctx": enc_pos.shape[0],
        "n_audio_state": enc_pos.shape[1],
        "n_audio_head": ct2["encoder/num_heads"].scalar(),
        "n_audio_layer": count_layers(ct2, "encoder"),
        "n_text_ctx": dec_pos.shape[0],
        "n_text_state": dec_pos.shape[1],
        "n_text_head": ct2["decoder/num_heads"].scalar(),
        "n_text_layer": count_layers(ct2, "decoder"),
        "n_mels": conv1.shape[1],
    }
    multilingual = hp["n_vocab"] >= 51865
    print(f"  spec {spec} rev {revision}; {len(ct2)} variables; "
          f"{'multilingual' if multilingual else 'English-only'}; {hp}")
    if multilingual and len(config.get("lang_ids", [])) < 99:
        die("config.json: a multilingual model should list at least 99 lang_ids")

    assets = read_assets(args.whisper_sdist)
    (n_mel, n_fft), filters = mel_filters(assets["mel_filters.npz"], hp["n_mels"])
    tokens = tiktoken_tokens(assets["multilingual.tiktoken" if multilingual else "gpt2.tiktoken"])
    if args.vocabulary:
        check_vocabulary(args.vocabulary, tokens, hp["n_vocab"])

    tensors = map_tensors(ct2, aliases)

    tmp = args.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(tmp, "wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC))
        out.write(struct.pack("<10i", *hp.values()))
        out.write(struct.pack("<i", 1))  # ftype: f16
        out.write(struct.pack("<ii", n_mel, n_fft))
        out.write(filters)
        out.write(struct.pack("<i", len(tokens)))
        for tok in tokens:
            out.write(struct.pack("<i", len(tok)))
            out.write(tok)
        for name, t in tensors:
            shape = t.shape
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                shape = (shape[0], 1)  # whisper.cpp wants [n_state, 1]
            ttype = ggml_type(name, len(shape))
            data = as_f32_bytes(t) if ttype == F32 else as_f16_bytes(t)
            raw = name.encode()
            out.write(struct.pack("<iii", len(shape), len(raw), ttype))
            out.write(struct.pack(f"<{len(shape)}i", *reversed(shape)))
            out.write(raw)
            out.write(data)
    problems = verify(tmp, quiet=True)
    if problems:
        os.unlink(tmp)
        die("written file does not verify: " + "; ".join(problems))
    os.replace(tmp, args.out)
    print(f"  wrote {args.out}: {os.path.getsize(args.out)} bytes, {len(tensors)} tensors")


# --------------------------------------------------------------------------
# verify an existing ggml file (also used by models.sh to skip work)
# --------------------------------------------------------------------------
def expected_names(n_audio_layer, n_text_layer):
    names = {"encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias",
             "encoder.conv2.weight", "encoder.conv2.bias", "encoder.ln_post.weight",
             "encoder.ln_post.bias", "decoder.positional_embedding",
             "decoder.token_embedding.weight", "decoder.ln.weight", "decoder.ln.bias"}
    attn = ["query.weight", "query.bias", "key.weight", "value.weight", "value.bias",
            "out.weight", "out.bias"]
    common = ["attn_ln.weight", "attn_ln.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
              "mlp.2.bias", "mlp_ln.weight", "mlp_ln.bias"] + [f"attn.{a}" for a in attn]
    for i in range(n_audio_layer):
        names |= {f"encoder.blocks.{i}.{c}" for c in common}
    for i in range(n_text_layer):
        names |= {f"decoder.blocks.{i}.{c}" for c in common}
        names |= {f"decoder.blocks.{i}.cross_attn.{a}" for a in attn}
        names |= {f"decoder.blocks.{i}.cross_attn_ln.weight", f"decoder.blocks.{i}.cross_attn_ln.bias"}
    return names


def verify(path, quiet=False, expect_vocab=None):
    problems = []
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            def u(fmt):
                n = struct.calcsize("<" + fmt)
                b = f.read(n)
                if len(b) != n:
                    raise EOFError
                return struct.unpack("<" + fmt, b)

            (magic,) = u("i")
            if magic != GGML_MAGIC:
                return [f"bad magic {magic:#x}"]
            hp = u("10i")
            (ftype,) = u("i")
            n_vocab, _, _, _, n_al, _, _, _, n_tl, n_mels = hp
            if expect_vocab is not None and n_vocab != expect_vocab:
                problems.append(f"n_vocab {n_vocab}, expected {expect_vocab}")
            n_mel, n_fft = u("ii")
            if n_mel != n_mels:
                problems.append(f"mel filters for {n_mel} mels, model has {n_mels}")
            f.seek(4 * n_mel * n_fft, 1)
            (n_tok,) = u("i")
            for _ in range(n_tok):
                (ln,) = u("i")
                f.seek(ln, 1)
            seen = set()
            while f.tell() < size:
                nd, nl, tt = u("iii")
                dims = u(f"{nd}i")
                name = f.read(nl).decode()
                n = 1
                for d in dims:
                    n *= d
                f.seek(n * (4 if tt == F32 else 2), 1)
                seen.add(name)
            if f.tell() != size:
                problems.append("last tensor runs past the end of the file")
            want = expected_names(n_al, n_tl)
            if seen != want:
                miss, extra = want - seen, seen - want
                problems.append(f"{len(miss)} tensors missing, {len(extra)} unexpected")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        problems.append(f"unreadable: {e or 'truncated'}")
    if not quiet:
        print(f"{path}: " + ("ok" if not problems else "; ".join(problems)))
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-bin", nargs="+")
    p.add_argument("--config")
    p.add_argument("--vocabulary")
    p.add_argument("--whisper-sdist")
    p.add_argument("--out")
    p.add_argument("--verify", metavar="GGML")
    p.add_argument("--expect-vocab", type=int)
    args = p.parse_args()
    if args.verify:
        sys.exit(1 if verify(args.verify, expect_vocab=args.expect_vocab) else 0)
    for opt in ("model_bin", "config", "whisper_sdist", "out"):
        if not getattr(args, opt):
            p.error(f"--{opt.replace('_', '-')} is required")
    convert(args)


if __name__ == "__main__":
    main()
