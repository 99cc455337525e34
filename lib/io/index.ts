/** PLACEHOLDER (owner: io): saveSafetensors, loadSafetensors, checkpoints. */
export {}
