/** PLACEHOLDER (owner: optim): Adam, SGD, clipGradNorm. */
export {}
