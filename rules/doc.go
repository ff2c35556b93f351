// Package rules turns decoded Modbus and DNP3 operations into alerts
// under a policy (package rules/policy): the engine, the built-in
// detectors, learning a baseline, and alert aggregation. Technique ids are
// those of MITRE ATT&CK for ICS.
package rules
