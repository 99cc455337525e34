/** PLACEHOLDER (owner: data): toy densities and the digits set. */
export {}
