// Package failover proves what the service does when its PostgreSQL primary is lost: the tests start
// a primary and a streaming standby of their own on this machine, run the whole service on a
// multi-host DATABASE_URL, kill the primary with SIGKILL in the middle of creates and webhooks,
// promote the standby, and check what was acknowledged against what survived. A third test puts a
// host that drops packets first in DATABASE_URL.
//
// The tests are behind the build tag ha, so that `go test ./...` (make test) does not compile them:
// they need PostgreSQL's server binaries, root (or password-less sudo) for runuser and for a network
// device, and a minute. Run them with make test-ha:
//
//	go test -tags ha -race -count=1 -v ./internal/failover/
package failover
