"""Prints src/keras/layer_defaults.ts's table: Keras's get_config() of each layer class the generic
codec serves (run with KERAS_BACKEND=jax in the venv that scripts/keras/test-keras.mjs creates)."""
import json

import keras

L = keras.layers
CASES = {
    "Conv1D": lambda: L.Conv1D(4, 3), "Conv2D": lambda: L.Conv2D(4, 3),
    "MaxPooling1D": lambda: L.MaxPooling1D(2), "AveragePooling1D": lambda: L.AveragePooling1D(2),
    "MaxPooling2D": lambda: L.MaxPooling2D(2), "AveragePooling2D": lambda: L.AveragePooling2D(2),
    "GlobalMaxPooling1D": L.GlobalMaxPooling1D, "GlobalMaxPooling2D": L.GlobalMaxPooling2D,
    "GlobalAveragePooling2D": L.GlobalAveragePooling2D, "Flatten": L.Flatten,
    "Reshape": lambda: L.Reshape((2, 3)), "Permute": lambda: L.Permute((2, 1)), "Softmax": L.Softmax,
    "ReLU": L.ReLU, "LeakyReLU": L.LeakyReLU, "ELU": L.ELU, "BatchNormalization": L.BatchNormalization,
    "ZeroPadding1D": L.ZeroPadding1D, "Cropping1D": L.Cropping1D, "UpSampling1D": L.UpSampling1D,
    "RepeatVector": lambda: L.RepeatVector(3), "SpatialDropout1D": lambda: L.SpatialDropout1D(0.1),
    "GaussianNoise": lambda: L.GaussianNoise(0.1), "GaussianDropout": lambda: L.GaussianDropout(0.1),
    "Subtract": L.Subtract, "Dot": lambda: L.Dot(axes=1), "Masking": L.Masking, "PReLU": L.PReLU,
}
for name, make in CASES.items():
    config = make().get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    config = {k: ({"class_name": v["class_name"]} if isinstance(v, dict) else v) for k, v in config.items()}
    print(f"  {name}: {json.dumps(config)},")
