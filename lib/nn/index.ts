/** PLACEHOLDER (owner: nn): Module, Linear, Conv2d, activations, Dropout, Identity, Sequential, init. */
export {}
