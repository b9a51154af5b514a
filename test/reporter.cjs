// Spec output, then the one closing line CI reads: "N passed, N failed" (TEST_RESULT_LABEL: "label: N passed...").
const Mocha = require('mocha');

class PassedFailedReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const { passes = 0, failures = 0, pending = 0 } = runner.stats || {};
      const skipped = pending ? `, ${pending} skipped` : '';
      // .ci/run labels each run's line and ends with the unlabelled total of its runs.
      const label = process.env.TEST_RESULT_LABEL ? `${process.env.TEST_RESULT_LABEL}: ` : '';
      process.stdout.write(`\n${label}${passes} passed, ${failures} failed${skipped}\n`);
    });
  }
}

module.exports = PassedFailedReporter;
