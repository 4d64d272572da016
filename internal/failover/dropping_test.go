//go:build ha

package failover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/app"
	"github.com/merchant/o2o/internal/config"
)

// A database host that drops packets instead of refusing connections — a machine that is gone, a
// firewall, a network partition — listed first in DATABASE_URL: each connection attempt to it is
// bounded by DB_CONNECT_TIMEOUT (or the URL's connect_timeout, which wins), not by the kernel's two
// minutes of SYN retries, and the service starts and serves from the next host.
func TestPacketDroppingHost(t *testing.T) {
	h := newPGHost(t)
	db := h.initdb("db")
	db.start()
	db.migrate(database)
	addr := droppingAddress(t)

	// The address really drops: a dial is neither accepted nor refused, it runs out of time.
	conn, err := net.DialTimeout("tcp", addr+":5432", time.Second)
	var netErr net.Error
	if err == nil {
		conn.Close()
		t.Fatalf("%s:5432 accepted a connection; want silence", addr)
	}
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("dial %s:5432: %v; want a timeout (dropped packets), not a refusal", addr, err)
	}

	timeout := config.Defaults().DBConnectTimeout // what the README names, 5 s
	url := fmt.Sprintf("postgres://postgres@%s:5432,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write", addr, db.port, database)
	within := func(what string, took, bound time.Duration) {
		t.Helper()
		// At least the timeout: the first host was tried and waited for; at most the timeout and
		// what the rest of the work takes on a loaded machine.
		if took < bound || took > bound+3*time.Second {
			t.Errorf("%s took %s; want the connect timeout (%s) and a little more", what, ms(took), bound)
		}
	}

	// The service starts: OpenDatabase's first connection tries the silent host for DB_CONNECT_TIMEOUT,
	// then the next host.
	start := time.Now()
	s := apitest.New(t, apitest.Options{DatabaseURL: url})
	startup := time.Since(start)
	within("start-up with DB_CONNECT_TIMEOUT", startup, timeout)

	// Every new connection pays the timeout once: a create on an emptied pool, and /readyz, whose
	// schema check has connections of its own (the migrator's).
	s.App.Pool.Reset()
	start = time.Now()
	r := s.Create(apitest.NewInvoice("INV-DROP-1", "alfa"))
	newConn := time.Since(start)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", r.Status, r.Body)
	}
	within("a create on a new connection", newConn, timeout)
	start = time.Now()
	r = s.GET("/readyz")
	readyz := time.Since(start)
	if r.Status != http.StatusOK {
		t.Fatalf("/readyz: HTTP %d %s", r.Status, r.Body)
	}
	// The pool keeps its connections: the next create does not try the silent host at all.
	start = time.Now()
	if r := s.Create(apitest.NewInvoice("INV-DROP-2", "indomaret")); r.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", r.Status, r.Body)
	}
	pooled := time.Since(start)
	if pooled > time.Second {
		t.Errorf("a create on a pooled connection took %s", ms(pooled))
	}

	// The URL's connect_timeout takes precedence over DB_CONNECT_TIMEOUT.
	start = time.Now()
	pool, err := app.OpenDatabase(context.Background(), config.Database{DatabaseURL: config.Secret(url + "&connect_timeout=2"),
		DBConnectTimeout: timeout, DBStartupTimeout: 30 * time.Second, DBMaxConns: 2}, zerolog.Nop())
	fromURL := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	within("opening the database with connect_timeout=2 in the URL", fromURL, 2*time.Second)

	t.Logf("\nPACKET-DROPPING HOST (%s, listed first in DATABASE_URL)\n"+
		"  start-up: %s with DB_CONNECT_TIMEOUT=%s (the silent host, then the next)\n"+
		"  a create on a new connection: %s; /readyz on a new connection: %s; a create on a pooled connection: %s\n"+
		"  opening the database with connect_timeout=2 in the URL: %s\n",
		addr, ms(startup), timeout, ms(newConn), ms(readyz), ms(pooled), ms(fromURL))
}

// droppingAddress is an address every packet to which is silently dropped: a TEST-NET-2 address
// (RFC 5737: never a real host) routed into a TUN device that nothing reads. A connection attempt to
// it gets no answer at all — no refusal, no "unreachable" — as with a machine that is gone. The
// device, and the route with it, go when the test ends; as root, the device belongs to this process
// (it goes even if the test dies without its cleanups), otherwise it is made with password-less sudo.
func droppingAddress(t *testing.T) string {
	t.Helper()
	dev := fmt.Sprintf("o2odrop%d", os.Getpid()%10000000) // at most 15 characters, as Linux wants
	if os.Geteuid() == 0 {
		tun, err := openTUN(dev)
		if err != nil {
			t.Fatalf("a network device for a packet-dropping host: %v", err)
		}
		t.Cleanup(func() { tun.Close() })
	} else {
		if err := asRoot("ip", "tuntap", "add", "dev", dev, "mode", "tun"); err != nil {
			t.Fatalf("a network device for a packet-dropping host: %v (needs iproute2 and root, or password-less sudo)", err)
		}
		t.Cleanup(func() {
			if err := asRoot("ip", "link", "del", dev); err != nil {
				t.Errorf("remove device %s: %v", dev, err)
			}
		})
	}
	if err := asRoot("ip", "link", "set", dev, "up"); err != nil {
		t.Fatalf("%v (needs iproute2)", err)
	}
	var err error
	for i := 0; i < 5; i++ {
		addr := fmt.Sprintf("198.51.100.%d", 1+rand.IntN(254))
		if err = asRoot("ip", "route", "add", addr+"/32", "dev", dev); err == nil {
			return addr
		}
	}
	t.Fatalf("route to the device: %v", err)
	return ""
}

// openTUN makes TUN device name, which lasts as long as the returned file is open: closing it, or the
// end of the process, removes the device and its routes.
func openTUN(name string) (*os.File, error) {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	// struct ifreq: the name, then the flags. IFF_TUN: IP packets; IFF_NO_PI: no header on them.
	const iffTUN, iffNoPI, tunSetIff = 0x0001, 0x1000, 0x400454ca
	var req [40]byte
	copy(req[:15], name)
	*(*uint16)(unsafe.Pointer(&req[16])) = iffTUN | iffNoPI
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), tunSetIff, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		f.Close()
		return nil, fmt.Errorf("TUNSETIFF %s: %v", name, errno)
	}
	return f, nil
}
