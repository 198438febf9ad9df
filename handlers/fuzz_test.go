package handlers

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/autograph/pgbackup/jobs/engine"
	"github.com/autograph/pgbackup/jobs/tasks"
)

var createSeeds = []string{
	``, `{}`, `{"backup_name":"a","format":"tar","upload_to_minio":true,"database":"db"}`,
	`{"backup_name":"../x"}`, `{"format":"zip"}`, `{"backup_name":1}`, `{"a":1}`, `{"backup_name":"x"} trailing`,
	`[`, `null`, `"str"`, `{"database":"a;b"}`, `{"backup_name":"\u0000"}`, `{"upload_to_minio":null}`,
}

// FuzzDecodeJSON: the strict decoder never panics, and whatever it accepts
// was a single valid JSON value with only known fields.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range createSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createRequest
		if err := decodeJSONBytes(body, &req); err != nil {
			if !strings.HasPrefix(err.Error(), "bad request: ") {
				t.Fatalf("decode error %q is not a bad request", err)
			}
			return
		}
		if len(strings.TrimSpace(string(body))) > 0 && !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}

// FuzzCreateBackup sends arbitrary bodies to the create route: the answer
// is always 202, 400 or 409, never a 5xx, and anything enqueued carries a
// valid name, format and database.
func FuzzCreateBackup(f *testing.F) {
	for _, s := range createSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fx := newFixture(t)
		code, resp := fx.do(http.MethodPost, "/api/admin/backup/create", testAdmin, strings.NewReader(body))
		switch code {
		case http.StatusAccepted, http.StatusBadRequest, http.StatusConflict:
		default:
			t.Fatalf("body %q: status %d %s", body, code, resp)
		}
		if code != http.StatusAccepted {
			if fx.queue.count() != 0 {
				t.Fatalf("body %q refused with %d but a task was enqueued", body, code)
			}
			return
		}
		var p tasks.BackupPayload
		if err := json.Unmarshal(fx.queue.tasks[0].Payload(), &p); err != nil {
			t.Fatal(err)
		}
		if engine.ValidateName(p.BackupName) != nil {
			t.Fatalf("enqueued invalid name %q", p.BackupName)
		}
		if _, err := engine.ParseFormat(p.Format); err != nil || p.Format == "" {
			t.Fatalf("enqueued format %q", p.Format)
		}
	})
}
