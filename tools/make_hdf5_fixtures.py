#!/usr/bin/env python3
"""Generates ckpt's HDF5 test fixtures with h5py and real Keras 3.

    KERAS_BACKEND=torch python tools/make_hdf5_fixtures.py

Needs h5py (3.16.0 here) and keras 3 with a backend (torch here). CI never runs this: the
outputs are committed under fixtures/hdf5/ (a few hundred kB):

  h5py_mixed.h5             h5py, default settings: nested groups, float16/32/64 with NaN
                            payloads, ±inf, -0 and subnormals, gzip+shuffle chunked, fletcher32,
                            int8..int64, uint8..uint64, big-endian float16/32/64 and int32, bool,
                            complex64, a scalar, zero-size datasets, all-digit names (natural
                            order), a hard link (tie) and a soft link, attributes of every kind
  keras3.weights.h5         keras.Model.save_weights (Keras 3): a functional model with a nested
                            Sequential, Dense, LayerNormalization, Embedding, BatchNormalization
  keras_legacy_model.h5     model.save("....h5") (Keras' legacy HDF5 model format)
  keras_legacy_weights.h5   legacy save_weights_to_hdf5_group (the Keras 2 weights.h5 layout)
  refused/*.h5              files ckpt must refuse: an external link, external raw storage, a
                            virtual dataset, the lzf filter (not in the allow-list), a string
                            dataset
  expected.json             per file: tensors in ckpt's order with name, dtype, shape, sha256
                            and hex of the little-endian bytes (as h5py reads them back), ties,
                            and the metadata ckpt must report

  malformed/crash-1.10.8.h5 NOT generated here: a ckpt-written file with random bit flips that
                            makes libhdf5 1.10.8 dereference a bad pointer while opening it
                            (found by flipping random bits of `ckpt convert`'s output for
                            every_dtype.safetensors and running ckpt on each; kept verbatim).

Expected values come from reading each file back with h5py, independently of ckpt, and are
checked here against the arrays handed to h5py (or Keras' own variables).
"""

import hashlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hdf5")

CKPT_DTYPE = {
    np.dtype("float64"): "f64", np.dtype("float32"): "f32", np.dtype("float16"): "f16",
    np.dtype("int8"): "i8", np.dtype("int16"): "i16", np.dtype("int32"): "i32", np.dtype("int64"): "i64",
    np.dtype("uint8"): "u8", np.dtype("uint16"): "u16", np.dtype("uint32"): "u32", np.dtype("uint64"): "u64",
    np.dtype("bool"): "bool", np.dtype("complex64"): "c64",
}


def bits(dtype, values):
    """An array from raw bit patterns (keeps NaN payloads exactly)."""
    dtype = np.dtype(dtype)
    return np.array(values, dtype=dtype.str.replace("f", "u").replace("c", "u")).view(dtype)


def entry(name, arr):
    le = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
    raw = np.ascontiguousarray(le).tobytes()
    return {
        "name": name,
        "dtype": CKPT_DTYPE[np.dtype(arr.dtype.newbyteorder("="))],
        "shape": list(arr.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "hex": raw.hex() if len(raw) <= 512 else None,
    }


def read_back(path, names):
    """name -> entry, reading `names` (tensor name -> HDF5 path) with h5py."""
    with h5py.File(path, "r") as f:
        return [entry(n, f[p][()] if f[p].shape == () else f[p][...]) for n, p in names]


def h5py_mixed(path):
    rng = np.random.default_rng(7)
    f16 = bits("<f2", [0x3C00, 0x8000, 0x7C00, 0xFC00, 0x7E01, 0x7C01, 0xFE00, 0x0001, 0x03FF, 0x7BFF])
    f32 = bits("<f4", [0x3F800000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0x7F800001, 0xFFC00000, 0x00000001])
    f64 = bits("<f8", [0x3FF0000000000000, 0x8000000000000000, 0x7FF8000000000001, 0x0000000000000001])
    tensors = [  # (hdf5 path, array as written, create_dataset kwargs)
        ("encoder/layer0/attn/weight", rng.standard_normal((16, 12)).astype("<f4"), {}),
        ("encoder/layer0/attn/bias", rng.standard_normal(12).astype("<f2"), {}),
        ("encoder/layer0/mlp/weight", rng.standard_normal((64, 48)).astype("<f4"),
         {"chunks": (16, 48), "compression": "gzip", "compression_opts": 4, "shuffle": True}),
        ("encoder/layer0/mlp/checked", rng.standard_normal((8, 8)).astype("<f8"), {"chunks": (4, 8), "fletcher32": True}),
        ("encoder/layer1/weight", rng.standard_normal((3, 5, 7)).astype("<f4"),
         {"chunks": (1, 5, 7), "compression": "gzip", "compression_opts": 9, "shuffle": True, "fletcher32": True}),
        ("special/f16", f16, {}),
        ("special/f32", f32, {}),
        ("special/f64", f64, {}),
        ("ints/i8", np.array([-128, -1, 0, 1, 127], dtype="i1"), {}),
        ("ints/u8", np.array([0, 1, 255], dtype="u1"), {}),
        ("ints/i16", np.array([-32768, 32767], dtype="<i2"), {}),
        ("ints/u16", np.array([0, 65535], dtype="<u2"), {}),
        ("ints/i32", np.array([-(2**31), 2**31 - 1], dtype="<i4"), {}),
        ("ints/u32", np.array([0, 2**32 - 1], dtype="<u4"), {}),
        ("ints/i64", np.array([-(2**63), 2**63 - 1], dtype="<i8"), {}),
        ("ints/u64", np.array([0, 2**64 - 1], dtype="<u8"), {}),
        ("bigendian/f16", f16.astype(">f2"), {}),
        ("bigendian/f32", f32.astype(">f4").reshape(2, 4), {}),
        ("bigendian/f64", f64.astype(">f8"), {}),
        ("bigendian/i32", np.array([-2, 1, 2**31 - 1], dtype=">i4"), {}),
        ("bigendian/gzip", rng.standard_normal((32, 8)).astype(">f4"), {"chunks": (8, 8), "compression": "gzip", "shuffle": True}),
        ("mask", np.array([[True, False, True], [False, False, True]]), {}),
        ("complex", np.array([1.5 - 2j, 0.25 + 3j], dtype="<c8"), {}),
        ("scalar", np.float32(3.5), {}),
        ("empty/f32", np.zeros((0,), dtype="<f4"), {}),
        ("empty/i64", np.zeros((2, 0), dtype="<i8"), {}),
    ]
    # All-digit names in a group without creation order: ckpt sorts them as numbers.
    for i in [0, 1, 2, 9, 10, 11]:
        tensors.append((f"stack/{i}", np.full((2,), i, dtype="<i4"), {}))
    with h5py.File(path, "w") as f:
        for p, arr, kw in tensors:
            f.create_dataset(p, data=arr, **kw)
        f["tied"] = f["encoder/layer0/attn/weight"]          # a second hard link: a tie
        f["shortcut"] = h5py.SoftLink("/encoder/layer1/weight")  # a soft link: a tie too
        f.attrs["format"] = "h5py"
        f.attrs["note"] = np.bytes_(b"fixed-length bytes")
        f.attrs["epochs"] = np.int64(12)
        f.attrs["lr"] = np.float64(1e-05)
        f.attrs["scale"] = np.float32(0.1)
        f.attrs["shape"] = np.array([3, 4], dtype="<i4")
        f.attrs["flags"] = np.array([True, False])
        f.attrs["names"] = ["a", "bé"]
        f["encoder"].attrs["kind"] = "encoder"
        f["encoder/layer0/attn/weight"].attrs["units"] = np.int32(12)
    # ckpt walks depth-first; in a group without creation order, all-digit names come first,
    # as numbers, then the others by their bytes.
    def natural(n):
        return (0, len(n), n) if n.isascii() and n.isdigit() else (1, 0, n.encode())

    written = dict((p, arr) for p, arr, _ in tensors)

    def walk(group_paths, prefix=""):
        names = sorted({p[len(prefix):].split("/")[0] for p in group_paths if p.startswith(prefix)}, key=natural)
        out = []
        for n in names:
            full = prefix + n
            out += [full] if full in written else walk(group_paths, full + "/")
        return out

    order = walk(list(written))
    tensors_out = read_back(path, [(p.replace("/", "."), p) for p in order])
    for e, p in zip(tensors_out, order):  # h5py's values are what we wrote
        arr = written[p]
        le = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
        assert hashlib.sha256(np.ascontiguousarray(le).tobytes()).hexdigest() == e["sha256"], p
    return {
        "tensors": tensors_out,
        "ties": {"tied": "encoder.layer0.attn.weight", "shortcut": "encoder.layer1.weight"},
        "metadata": {
            "format": "h5py", "note": "fixed-length bytes", "epochs": "12", "lr": "1e-05", "scale": "0.1",
            "shape": "[3, 4]", "flags": "[true, false]", "names": '["a","bé"]',
            "encoder:kind": "encoder", "encoder/layer0/attn/weight:units": "12",
        },
    }


def keras_models():
    import keras
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.layers.Dense(6, name="inner_dense"), keras.layers.LayerNormalization(name="inner_norm")],
                             name="block")
    tokens = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(11, 4, name="embed")(tokens)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu", name="proj")(x)
    x = inner(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(tokens, out, name="tiny_keras")
    model.predict(np.zeros((2, 5), dtype="int32"), verbose=0)
    # Non-trivial BatchNormalization statistics.
    for v in model.get_layer("bn").non_trainable_variables:
        v.assign(np.linspace(0.5, 1.5, v.shape[0]).astype("float32"))
    return keras, model


def keras3(path):
    keras, model = keras_models()
    model.save_weights(path)
    names = []
    with h5py.File(path, "r") as f:
        # ckpt's documented rule: layers/<a>[/layers/<b>...]/vars/<i> -> <name of a>[.<name of b>].<i>,
        # the names from each vars group's `name` attribute; group names in natural order.
        def own_name(group, path):
            return group["vars"].attrs.get("name", path.split("/")[-1]) if "vars" in group else path.split("/")[-1]

        def visit(group, outer, path):
            own = own_name(group, path)
            if "vars" in group:
                for i in sorted(group["vars"].keys(), key=int):
                    names.append((".".join(outer + [own, i]), f"{path}/vars/{i}"))
            if "layers" in group:
                for key in sorted(group["layers"].keys()):
                    visit(group["layers"][key], outer + [own], f"{path}/layers/{key}")

        for key in sorted(f["layers"].keys()):
            visit(f["layers"][key], [], f"layers/{key}")
    tensors = read_back(path, names)
    # Cross-check against Keras' own variables.
    by_name = {e["name"]: e for e in tensors}
    for layer_path, layer in [("proj", model.get_layer("proj")), ("head", model.get_layer("head")),
                              ("embed", model.get_layer("embed")), ("bn", model.get_layer("bn")),
                              ("block.inner_dense", model.get_layer("block").get_layer("inner_dense"))]:
        for i, v in enumerate(layer.variables):
            raw = np.asarray(keras.ops.convert_to_numpy(v)).astype("<f4").tobytes()
            assert hashlib.sha256(raw).hexdigest() == by_name[f"{layer_path}.{i}"]["sha256"], (layer_path, i)
    return {"tensors": tensors, "ties": {}, "metadata": {}}


def keras_legacy(path, whole_model):
    keras, model = keras_models()
    if whole_model:
        model.save(path)  # legacy HDF5 model format, chosen by the .h5 suffix
        base = "model_weights"
    else:
        from keras.src.legacy.saving import legacy_h5_format
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
        base = ""
    names = []
    with h5py.File(path, "r") as f:
        g = f[base] if base else f
        for layer in [n.decode() if isinstance(n, bytes) else n for n in g.attrs["layer_names"]]:
            for w in g[layer].attrs["weight_names"]:
                w = w.decode() if isinstance(w, bytes) else str(w)
                stem = w.rsplit(":", 1)[0] if ":" in w and w.rsplit(":", 1)[1].isdigit() else w
                name = stem.replace("/", ".")
                if not (name == layer or name.startswith(layer + ".")):
                    name = layer + "." + name
                names.append((name, f"{base + '/' if base else ''}{layer}/{w}"))
        root_attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()
                      if k in ("backend", "keras_version", "model_config", "training_config")}
        if base:  # the model_weights group's own attributes, as `<path>:<name>`
            root_attrs.update({f"{base}:{k}": (v.decode() if isinstance(v, bytes) else str(v))
                               for k, v in g.attrs.items() if k != "layer_names"})
    tensors = read_back(path, names)
    for e in tensors:  # Keras' own values
        layer = e["name"].split(".")[0]
        lw = model.get_layer(layer)
        assert any(hashlib.sha256(np.asarray(keras.ops.convert_to_numpy(v)).astype("<f4").tobytes()).hexdigest() == e["sha256"]
                   for v in lw.variables + sum((l.variables for l in getattr(lw, "layers", [])), [])), e["name"]
    return {"tensors": tensors, "ties": {}, "metadata": root_attrs}


def refused(dir):
    os.makedirs(dir, exist_ok=True)
    with h5py.File(os.path.join(dir, "target.h5"), "w") as f:
        f["w"] = np.arange(4, dtype="<f4")
    with h5py.File(os.path.join(dir, "external_link.h5"), "w") as f:
        f["ok"] = np.arange(2, dtype="<f4")
        f["elsewhere"] = h5py.ExternalLink("target.h5", "/w")
    raw = np.arange(6, dtype="<f4")
    raw.tofile(os.path.join(dir, "external.bin"))
    with h5py.File(os.path.join(dir, "external_storage.h5"), "w") as f:
        f.create_dataset("w", shape=(6,), dtype="<f4", external=[("external.bin", 0, raw.nbytes)])
    layout = h5py.VirtualLayout(shape=(4,), dtype="<f4")
    layout[:] = h5py.VirtualSource("target.h5", "w", shape=(4,))  # relative: the fixture moves
    # libver v110: the selection encoding libhdf5 1.10 reads (h5py with HDF5 2.0 writes a newer one).
    with h5py.File(os.path.join(dir, "virtual.h5"), "w", libver=("v110", "v110")) as f:
        f.create_virtual_dataset("w", layout)
    with h5py.File(os.path.join(dir, "lzf.h5"), "w") as f:
        f.create_dataset("w", data=np.arange(64, dtype="<f4"), compression="lzf")
    with h5py.File(os.path.join(dir, "string.h5"), "w") as f:
        f["w"] = np.arange(3, dtype="<f4")
        f["notes"] = "a string dataset"


def main():
    os.makedirs(ROOT, exist_ok=True)
    expected = {
        "generator": f"tools/make_hdf5_fixtures.py with h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})",
        "files": {},
    }
    expected["files"]["h5py_mixed.h5"] = h5py_mixed(os.path.join(ROOT, "h5py_mixed.h5"))
    expected["files"]["keras3.weights.h5"] = keras3(os.path.join(ROOT, "keras3.weights.h5"))
    expected["files"]["keras_legacy_model.h5"] = keras_legacy(os.path.join(ROOT, "keras_legacy_model.h5"), True)
    expected["files"]["keras_legacy_weights.h5"] = keras_legacy(os.path.join(ROOT, "keras_legacy_weights.h5"), False)
    import keras
    expected["generator"] += f", keras {keras.__version__} ({keras.backend.backend()} backend)"
    refused(os.path.join(ROOT, "refused"))
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    print("wrote", ROOT)


if __name__ == "__main__":
    sys.exit(main())
