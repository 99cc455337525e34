/** Neural network building blocks: Module, layers, activations, Sequential and `init`. */
export { Module } from './module'
export type { StateDict, LoadStateDictOptions, LoadStateDictResult } from './module'
export { Linear, Conv2d } from './layers'
export type { LinearOptions, Conv2dOptions } from './layers'
export { ReLU, LeakyReLU, Tanh, Sigmoid, ELU, Identity, Flatten, Dropout } from './activation'
export { Sequential } from './container'
export { ModuleList } from './module-list'
export * as init from './init'
