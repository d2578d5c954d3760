"""Real Keras side of `npm run test:keras` (run by scripts/keras/test-keras.mjs in its venv).

    python keras_models.py make OUT      builds the models below in Keras, writes OUT/<name>.keras,
                                         OUT/<name>.weights.h5 and OUT/<name>.expected.json
    python keras_models.py check OUT     loads every OUT/<name>.ours.keras and .ours.weights.h5
                                         written by this package and compares Keras's outputs with
                                         OUT/<name>.ours.json; prints one JSON line per check

Weights are dyadic values from a seeded generator (exact in float32), as in test/data/fixtures.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import keras  # noqa: E402
from keras import layers as L  # noqa: E402


def dyadic(rng, shape, denom):
    return (rng.integers(-64, 65, size=shape) / denom).astype(np.float32)


def set_weights(model, seed):
    rng = np.random.default_rng(seed)
    new = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "moving_variance" in w.path:
            new.append((rng.integers(32, 256, size=shape) / 128).astype(np.float32))
        elif "embeddings" in w.path:
            new.append(dyadic(rng, shape, 64 * 8))
        elif "kernel" in w.path or "alpha" in w.path:
            new.append(dyadic(rng, shape, 256))
        else:
            new.append(dyadic(rng, shape, 128 * 4))
    model.set_weights(new)


def tokens(rng, batch, length, vocab, pad=True):
    t = rng.integers(1, vocab, size=(batch, length)).astype(np.int32)
    if pad:
        t[0, -2:] = 0
        t[1, -4:] = 0
    return t


def floats(rng, shape):
    return (rng.integers(-64, 65, size=shape) / 64).astype(np.float32)


def gqa(**kw):
    kw.setdefault("head_dim", 4)
    kw.setdefault("num_query_heads", 4)
    kw.setdefault("num_key_value_heads", 2)
    return L.GroupQueryAttention(**kw)


def decoder_block(x, i):
    a = gqa(name=f"gqa_{i}")(x, x, use_causal_mask=True)
    x = L.LayerNormalization(epsilon=1e-3, name=f"ln_a{i}")(L.Add(name=f"res_a{i}")([x, a]))
    h = L.Dense(24, activation="gelu", name=f"ff1_{i}")(x)
    h = L.Dense(16, name=f"ff2_{i}")(h)
    return L.LayerNormalization(epsilon=1e-3, name=f"ln_b{i}")(L.Add(name=f"res_b{i}")([x, h]))


def models(rng):
    """name -> (model, inputs in model.inputs order)."""
    out = {}

    x = keras.Input((12, 6), name="x")
    h = L.Conv1D(8, 3, padding="valid", activation="relu", name="conv_a")(x)
    h = L.MaxPooling1D(2, name="max_pool")(h)
    h = L.Conv1D(4, 3, padding="same", dilation_rate=1, name="conv_b")(h)
    h = L.AveragePooling1D(2, name="avg_pool")(h)
    h = L.GlobalMaxPooling1D(name="gmax")(h)
    out["conv_pool"] = (keras.Model(x, L.Dense(3, name="head")(h), name="conv_pool"), [floats(rng, (2, 12, 6))])

    x = keras.Input((10,), name="features")
    h = L.Dense(16, name="d1")(x)
    h = L.BatchNormalization(epsilon=1e-3, name="bn")(h)
    h = L.ReLU(name="relu")(h)
    h = L.Dropout(0.3, name="drop")(h)
    out["bn_mlp"] = (keras.Model(x, L.Dense(4, activation="softmax", name="probs")(h), name="bn_mlp"),
                     [floats(rng, (3, 10))])

    t = keras.Input((10,), dtype="int32", name="tokens")
    x = L.Embedding(40, 16, mask_zero=True, name="embed")(t)
    x = decoder_block(x, 0)
    x = decoder_block(x, 1)
    out["decoder2_masked"] = (keras.Model(t, L.Dense(40, name="logits")(x), name="decoder2_masked"),
                              [tokens(rng, 2, 10, 40)])

    x = keras.Input((6, 8), name="x")
    q = L.Dense(8, name="q_proj")(x)
    k = L.Dense(8, name="k_proj")(x)
    v = L.Dense(8, name="v_proj")(x)
    y = gqa(name="gqa")(query=q, value=v, key=k)
    out["kwargs_proj"] = (keras.Model(x, y, name="kwargs_proj"), [floats(rng, (2, 6, 8))])

    x = keras.Input((5, 8), name="x")
    a = gqa(name="gqa")(x, x)
    y1 = L.Dense(3, name="head_a")(a)
    y2 = L.GlobalAveragePooling1D(name="pool")(a)
    out["multi_output"] = (keras.Model(x, [y1, L.Dense(2, name="head_b")(y2)], name="multi_output"),
                           [floats(rng, (2, 5, 8))])

    value = keras.Input((7, 8), name="value")
    query = keras.Input((5, 8), name="query")
    y = gqa(name="gqa", num_key_value_heads=1)(query, value)
    out["inputs_reversed"] = (keras.Model([value, query], y, name="inputs_reversed"),
                              [floats(rng, (2, 7, 8)), floats(rng, (2, 5, 8))])

    t = keras.Input((9,), dtype="int32", name="tokens")
    x = L.Embedding(30, 16, mask_zero=True, name="embed")(t)
    x = gqa(name="gqa")(x, x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out["gap_masked"] = (keras.Model(t, L.Dense(5, activation="softmax", name="probs")(x), name="gap_masked"),
                         [tokens(rng, 2, 9, 30)])

    x = keras.Input((6, 8), name="x")
    a = gqa(name="gqa")(x, x)
    a = L.LayerNormalization(axis=2, name="ln_pos")(a)
    a = L.LayerNormalization(rms_scaling=True, name="ln_rms")(a)
    out["ln_axes"] = (keras.Model(x, a, name="ln_axes"), [floats(rng, (2, 6, 8))])

    x = keras.Input((4, 6), name="x")
    h = L.Permute((2, 1), name="perm")(x)
    h = L.Reshape((4, 6), name="reshape")(h)
    h = L.LeakyReLU(negative_slope=0.2, name="leaky")(h)
    h = L.Flatten(name="flat")(h)
    out["reshape_flat"] = (keras.Model(x, L.Dense(3, name="head")(h), name="reshape_flat"), [floats(rng, (2, 4, 6))])

    q = keras.Input((6, 8), name="query")
    v = keras.Input((6, 8), name="value")
    y = gqa(name="gqa", use_gate=True, sliding_window=3)(q, v, use_causal_mask=True)
    out["gate_window"] = (keras.Model([q, v], y, name="gate_window"), [floats(rng, (2, 6, 8)), floats(rng, (2, 6, 8))])

    a = keras.Input((6, 8), name="a")
    b = keras.Input((6, 8), name="b")
    shared = gqa(name="shared")
    s = L.Maximum(name="max")([shared(a, a), shared(b, b)])
    out["shared_maximum"] = (keras.Model([a, b], L.Dense(4, name="out")(s), name="shared_maximum"),
                              [floats(rng, (2, 6, 8)), floats(rng, (2, 6, 8))])

    x = keras.Input((8, 8), name="x")
    a = gqa(name="gqa", num_query_heads=6, num_key_value_heads=3, head_dim=3)(x, x, use_causal_mask=True)
    c = L.Concatenate(name="cat")([x, a])
    out["concat_odd_heads"] = (keras.Model(x, L.Dense(5, activation="tanh", name="head")(c), name="concat_odd_heads"),
                               [floats(rng, (2, 8, 8))])
    return out


def tensor_json(a):
    a = np.asarray(a)
    dtype = "int32" if a.dtype.kind in "iu" else "bool" if a.dtype == bool else "float32"
    return {"shape": list(a.shape), "dtype": dtype, "data": a.astype(np.float64 if dtype == "float32" else np.int64).ravel().tolist()}


def as_list(y):
    return [np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])]


def make(out_dir):
    rng = np.random.default_rng(2026)
    for seed, (name, (model, inputs)) in enumerate(models(rng).items()):
        set_weights(model, 100 + seed)
        if name == "bn_mlp":
            model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
            model.fit(inputs[0], np.array([0, 1, 2]), epochs=1, verbose=0, batch_size=3)
        y = as_list(model(inputs if len(inputs) > 1 else inputs[0], training=False))
        model.save(os.path.join(out_dir, f"{name}.keras"))
        model.save_weights(os.path.join(out_dir, f"{name}.weights.h5"))
        expected = {
            "name": name,
            "inputs": {t.name.split(":")[0]: tensor_json(v) for t, v in zip(model.inputs, inputs)},
            "input_names": [t.name.split(":")[0] for t in model.inputs],
            "outputs": [tensor_json(v) for v in y],
        }
        if name == "decoder2_masked":
            # Padded query rows have no allowed key (Keras masks the whole row by query_mask). There
            # this package keeps Keras 3.6's numbers, which Keras 3.10+ changed (README, "Keras options
            # after 3.6"); every other row is compared.
            expected["compare_rows"] = (inputs[0] != 0).astype(np.int64).ravel().tolist()
        with open(os.path.join(out_dir, f"{name}.expected.json"), "w") as f:
            json.dump(expected, f)
        print(json.dumps({"made": name}))


def close(got, expected):
    got = np.asarray(got, np.float64)
    expected = np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return False, f"shape {got.shape} != {expected.shape}"
    err = np.abs(got - expected) / (1 + np.abs(expected))
    both_nan = np.isnan(got) & np.isnan(expected)
    err = np.where(both_nan, 0, err)
    worst = float(np.nanmax(err)) if err.size else 0.0
    return bool(worst <= 1e-5 and not np.isnan(err).any()), f"max rel err {worst:.3g}"


def check(out_dir):
    for file in sorted(os.listdir(out_dir)):
        if not file.endswith(".ours.json"):
            continue
        name = file[: -len(".ours.json")]
        with open(os.path.join(out_dir, file)) as f:
            spec = json.load(f)
        inputs = [np.asarray(spec["inputs"][n]["data"], dtype=spec["inputs"][n]["dtype"]).reshape(spec["inputs"][n]["shape"])
                  for n in spec["input_names"]]
        feed = inputs if len(inputs) > 1 else inputs[0]
        for kind in ("load_model", "load_weights"):
            try:
                if kind == "load_model":
                    model = keras.saving.load_model(os.path.join(out_dir, f"{name}.ours.keras"))
                else:
                    # Into the same architecture with fresh weights: the file must put every weight back.
                    model = keras.saving.load_model(os.path.join(out_dir, f"{name}.ours.keras"))
                    model.set_weights([np.zeros(w.shape, np.float32) for w in model.weights])
                    model.load_weights(os.path.join(out_dir, f"{name}.ours.weights.h5"))
                got = as_list(model(feed, training=False))
                keep = spec.get("compare_rows")
                pick = (lambda a: a.reshape(-1, a.shape[-1])[np.asarray(keep) == 1]) if keep else (lambda a: a)
                oks = [close(pick(np.asarray(g)), pick(np.asarray(e["data"]).reshape(e["shape"]))) for g, e in zip(got, spec["outputs"])]
                ok = len(got) == len(spec["outputs"]) and all(o for o, _ in oks)
                print(json.dumps({"check": f"{name}: Keras {kind} of our file", "ok": ok, "detail": "; ".join(d for _, d in oks)}))
            except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
                print(json.dumps({"check": f"{name}: Keras {kind} of our file", "ok": False, "detail": f"{type(e).__name__}: {str(e)[:400]}"}))


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
