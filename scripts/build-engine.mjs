// Placeholder until the engine's WebAssembly build lands (replaced by the engine work).
