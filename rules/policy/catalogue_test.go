package policy_test

// The built-in detectors are the engine's: importing rules registers them,
// as it does in a program that parses policies.
import _ "github.com/tapwatch/tapwatch/rules"
