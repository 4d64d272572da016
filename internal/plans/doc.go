// Package plans holds no code: its test (plans_test.go) holds the statements the service sends to
// PostgreSQL to their indexes. It captures every statement the request path and the workers really
// send, loads a year's volume into the same database and fails on a plan that scans or sorts a set
// that grows with traffic.
package plans
