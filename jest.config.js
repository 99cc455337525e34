const { createDefaultPreset } = require('ts-jest')

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/test/ci-summary-reporter.js'],
  ...createDefaultPreset({ tsconfig: '<rootDir>/tsconfig.json' }),
}
