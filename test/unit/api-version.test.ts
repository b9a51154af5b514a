import assert from 'node:assert/strict';
import { renderFleetTable, renderRobotDetail } from '../../agent/fleet/fleet-view.js';
import { apiVersionOf, MQTT_API_VERSION } from '../../agent/mqtt/api-version.js';
import { summarise, type StateSummary } from '../../agent/mqtt/summary.js';
import { Contract } from '../helpers/contract.js';
import { x3State } from '../helpers/x3-state.js';

/** Issue 18.8: robots of one fleet run different agent versions for months. */
describe('MQTT API version across a mixed fleet', () => {
  const contract = new Contract();
  const NOW = Date.parse('2026-12-06T10:00:00.000Z');
  const times = { changed: '2026-12-06T09:59:00.000Z', seen: '2026-12-06T09:59:30.000Z' };

  it('the summary and the agent section carry the API version, within the documented contract', () => {
    const state = x3State();
    state.agent.apiVersion = MQTT_API_VERSION;
    const summary = summarise(state, times);
    assert.equal(summary.apiVersion, MQTT_API_VERSION);
    contract.assert('state-summary.json', summary);
    contract.assert('state.json', state);
  });

  it('a robot one version older (a summary without apiVersion) is still valid, listed and shown as API 1', () => {
    const older = summarise(x3State(), times) as Partial<StateSummary>;
    delete older.apiVersion;
    const state = x3State();
    delete state.agent.apiVersion;
    contract.assert('state-summary.json', older);
    contract.assert('state.json', state);
    assert.equal(apiVersionOf(older), 1);
    const view = { robot: 'x3-old', online: true, state: older as StateSummary };
    assert.match(renderFleetTable([view], NOW), /^x3-old /m);
    const detail = renderRobotDetail({ ...view, sections: { agent: state.agent } }, NOW);
    assert.match(detail, /agent {7}0\.1\.0 \(MQTT API 1\)/);
    assert.doesNotMatch(detail, /WARNING/);
  });

  it('a robot with a newer, incompatible API is shown, with a warning to upgrade robot-fleet', () => {
    const newer = { ...summarise(x3State(), times), apiVersion: MQTT_API_VERSION + 1 };
    const detail = renderRobotDetail({ robot: 'x3-new', online: true, state: newer, sections: {} }, NOW);
    assert.match(
      detail,
      new RegExp(
        `WARNING +this robot speaks MQTT API ${MQTT_API_VERSION + 1}, this robot-fleet knows ${MQTT_API_VERSION}`,
      ),
    );
  });
});
