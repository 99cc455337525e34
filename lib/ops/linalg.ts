/** PLACEHOLDER (owner: linalg family): lu, slogdet, inverse, solveTriangular, qr. */
export {}
