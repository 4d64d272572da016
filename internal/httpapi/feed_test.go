package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
)

// slowCommits makes the database take varying moments at the two points where concurrent changes
// overtake each other: after a change has its transaction id (the invoice's row lock) and before its
// event is numbered (a trigger on the invoice's update, which precedes the event's insert), and after
// the event is numbered and before the commit is visible (a deferred trigger at COMMIT). A busy server
// does both by itself now and then; here they happen all the time.
func slowCommits(t *testing.T, s *apitest.Stack) {
	t.Helper()
	for _, sql := range []string{
		`CREATE FUNCTION slow_jitter() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_sleep(random() * 0.003); RETURN NULL; END $$`,
		`CREATE FUNCTION slow_jitter_row() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_sleep(random() * 0.003); RETURN NEW; END $$`,
		`CREATE TRIGGER slow_before_number BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION slow_jitter_row()`,
		`CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON events
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_jitter()`,
	} {
		sqlExec(t, s, sql)
	}
}

// The feed under production's concurrency: two replicas on one database, writers on both, and a
// follower paging with a small limit through one of them. Ten runs: the follower reads every event
// exactly once in each. (On the feed ordered by sequence number alone, this missed events in every
// run.)
func TestFeedFollowerAcrossTwoReplicas(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	b := s.Replica(nil)
	slowCommits(t, s)
	replicas := []string{s.URL, b.URL}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &apitest.ContractTransport{T: t, Base: http.DefaultTransport}}
	send := func(base, method, path string, body []byte) {
		r := apitest.Do(t, client, base, apitest.Request{Method: method, Path: path, Body: body})
		if r.Status >= 300 {
			t.Errorf("%s %s on %s: HTTP %d %s", method, path, base, r.Status, r.Body)
		}
	}

	cursor := ""
	for run := 0; run < 10; run++ {
		before := s.Count(`SELECT count(*) FROM events`)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				base := replicas[w%2]
				for i := 0; i < 6; i++ {
					number := fmt.Sprintf("INV-F%d-%d-%d", run, w, i)
					send(base, http.MethodPost, "/v1/invoices", apitest.JSON(t, apitest.NewInvoice(number, "alfa")))
					send(base, http.MethodPost, "/v1/invoices/"+number+"/cancel", []byte(`{"reason":"test"}`))
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		seen := map[string]int{}
		follow := func() {
			for {
				q := "/v1/events?limit=3"
				if cursor != "" {
					q += "&after=" + cursor
				}
				page := s.GET(q).EventPage(t)
				for _, e := range page.Items {
					seen[e.ID]++
				}
				if page.NextCursor != nil {
					cursor = *page.NextCursor
				}
				if !page.HasMore {
					return
				}
			}
		}
		for writing := true; writing; {
			select {
			case <-done:
				writing = false
			default:
			}
			follow()
		}
		want := s.Count(`SELECT count(*) FROM events`) - before
		for deadline := time.Now().Add(10 * time.Second); len(seen) < want && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			follow()
		}
		repeated := 0
		for _, n := range seen {
			if n > 1 {
				repeated++
			}
		}
		if len(seen) != want || repeated != 0 || want != 4*6*2 {
			t.Fatalf("run %d: %d events written, the follower read %d (%d missed), %d more than once", run+1, want, len(seen), want-len(seen), repeated)
		}
	}
	// The interleaving the feed must survive did happen: events numbered in the opposite order of
	// their transactions.
	if n := s.Count(`SELECT count(*) FROM events a JOIN events b ON a.seq < b.seq AND a.xid > b.xid`); n == 0 {
		t.Fatal("no two events had their numbers and transactions in opposite orders: the test proved nothing")
	}
}
