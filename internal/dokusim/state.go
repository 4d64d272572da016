package dokusim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// state is everything DOKU remembers: the orders and their codes, the answer to every Request-Id,
// and the sequence codes are drawn from. With Config.StateFile it outlives the process.
type state struct {
	Seq        int64                  `json:"seq"`
	Orders     map[string]*order      `json:"orders"`      // by invoice number
	Generation map[string]*generation `json:"generations"` // by Request-Id

	byCode map[string]*order // derived from Orders
}

type generation struct {
	BodyHash [32]byte `json:"body_sha256"`
	Response []byte   `json:"response"`
}

type order struct {
	InvoiceNumber string          `json:"invoice_number"`
	Channel       invoice.Channel `json:"channel"`
	Amount        int64           `json:"amount"`
	RequestID     string          `json:"request_id"`
	PaymentCode   string          `json:"payment_code"`
	Info          string          `json:"info"`
	Reusable      bool            `json:"reusable"`
	CreatedAt     time.Time       `json:"created_at"`
	ExpiresAt     time.Time       `json:"expires_at"`
	Payments      []payment       `json:"payments"`
}

type payment struct {
	TrxID string    `json:"trx_id"`
	At    time.Time `json:"at"`
}

func newState() state {
	return state{Orders: map[string]*order{}, Generation: map[string]*generation{}, byCode: map[string]*order{}}
}

// next is a fresh sequence number: codes and store transaction ids are drawn from it, so none is ever
// handed out twice.
func (st *state) next() int64 {
	st.Seq++
	return st.Seq
}

func (st *state) add(o *order) {
	st.Orders[o.InvoiceNumber] = o
	st.byCode[o.PaymentCode] = o
}

// load reads the state file, if there is one.
func (s *Simulator) load() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	raw, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dokusim: read state: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("dokusim: state file %s is not readable (delete it to start afresh): %w", s.cfg.StateFile, err)
	}
	if st.Orders == nil || st.Generation == nil {
		st.Orders, st.Generation = map[string]*order{}, map[string]*generation{}
	}
	st.byCode = map[string]*order{}
	for _, o := range st.Orders {
		st.byCode[o.PaymentCode] = o
	}
	s.state = st
	return nil
}

// save writes the state file (s.mu held): to a temporary file first, then renamed over the old one,
// so a crash mid-write leaves the previous state, never half of one.
func (s *Simulator) save() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	raw, err := json.Marshal(&s.state)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.cfg.StateFile), ".dokusim-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.cfg.StateFile)
}
