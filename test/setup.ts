/**
 * Runs before every test file: drops tfjs-backend-cpu's one-time "running TensorFlow.js in Node.js"
 * banner (advice to install tfjs-node, which this package does not use), so that test output shows
 * only what the tests themselves print. Every other warning passes through unchanged.
 */
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes('looks like you are running TensorFlow.js in Node.js')) return;
  warn(...args);
};
