// Mocha runs the compiled tests; scripts/test.sh builds first.
module.exports = {
  spec: ['build/test/**/*.test.js'],
  require: ['./build/test/setup.js'],
  reporter: 'test/reporter.cjs',
  timeout: 20000,
  slow: 2000,
  exit: true,
};
