package activity

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
)

// eventColumns is the column order shared by the INSERTs, the SELECTs,
// appendEventArgs and scanEvent; keeping it in one place keeps them in step.
const eventColumns = `id, ts, mode, user_name, user_groups, source_ip, device_tags,
	client_app, client_why, ja4, app, host, method, path, activity, file_name, file_size,
	file_sha256, file_type, file_label, detectors, policies, action, reason, bytes_up, bytes_down, session_id`

// selectColumns prefixes every column with the events alias "e." for the
// joins in Search.
var selectColumns = "e.seq, e." + strings.Join(strings.Split(strings.Join(strings.Fields(eventColumns), ""), ","), ", e.")

// scanEvent reads one row selected with selectColumns.
func scanEvent(rows *sql.Rows) (Event, error) {
	var (
		ev                     Event
		id                     []byte
		ts                     int64
		mode, ip               string
		groups, tags, policies sql.NullString
		detectors              sql.NullString
	)
	err := rows.Scan(&ev.Seq, &id, &ts, &mode, &ev.User, &groups, &ip, &tags,
		&ev.ClientApp, &ev.ClientWhy, &ev.JA4, &ev.App, &ev.Host, &ev.Method, &ev.Path, &ev.Activity, &ev.FileName, &ev.FileSize,
		&ev.FileSHA256, &ev.FileType, &ev.FileLabel, &detectors, &policies, &ev.Action, &ev.Reason, &ev.BytesUp, &ev.BytesDown, &ev.SessionID)
	if err != nil {
		return Event{}, fmt.Errorf("scan event: %w", err)
	}
	if ev.ID, err = uuid.FromBytes(id); err != nil {
		return Event{}, fmt.Errorf("event %d id: %w", ev.Seq, err)
	}
	ev.Time = time.Unix(0, ts).UTC()
	ev.Mode = Mode(mode)
	if ip != "" {
		if ev.SourceIP, err = netip.ParseAddr(ip); err != nil {
			return Event{}, fmt.Errorf("event %d source ip: %w", ev.Seq, err)
		}
	}
	for _, f := range []struct {
		src sql.NullString
		dst *[]string
	}{{groups, &ev.Groups}, {tags, &ev.DeviceTags}, {policies, &ev.Policies}} {
		if !f.src.Valid {
			continue
		}
		if err := json.Unmarshal([]byte(f.src.String), f.dst); err != nil {
			return Event{}, fmt.Errorf("event %d list: %w", ev.Seq, err)
		}
	}
	if detectors.Valid {
		if err := json.Unmarshal([]byte(detectors.String), &ev.Detectors); err != nil {
			return Event{}, fmt.Errorf("event %d detectors: %w", ev.Seq, err)
		}
	}
	return ev, nil
}

// scanEvents drains rows.
func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}
