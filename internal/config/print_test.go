package config

import (
	"encoding/json"
	"fmt"
	"testing"
)

func fmtAll(c Config) string { return fmt.Sprintf("%v %+v", c, c) }

func jsonAll(t *testing.T, c Config) string {
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
