package activity

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Kafka record layout, for consumers:
//   - value: the event as JSON, byte for byte what the JSON-lines exporter
//     writes on one line (without the newline);
//   - key: the event's SessionID, or its ID when it has none (KafkaKeySession,
//     the default), or always its ID (KafkaKeyEvent);
//   - header KafkaHeaderEventID: the event ID (UUID text), to de-duplicate
//     without parsing the value;
//   - timestamp: the event's Time.
//
// Records of one partition arrive in store order. Keying by session puts all
// of a session's events on one partition, so each session reads in order on
// any topic; the whole log reads in store order only on a one-partition
// topic. Keying by event ID spreads load evenly and lets a compacted topic
// collapse duplicates, but gives no order across a session.
const (
	KafkaKeySession = "session"
	KafkaKeyEvent   = "event"

	KafkaHeaderEventID = "event_id"
)

// KafkaSASL authenticates to the brokers.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. PLAIN sends the
	// password as is, so it is refused without TLS.
	Mechanism string
	User      string
	Password  string
}

// KafkaConfig configures the Kafka exporter. The zero value of every field
// but Brokers and Topic takes the default documented on it.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port (port 9092 when omitted).
	Brokers []string
	// Topic receives the events. It must exist: the exporter never creates
	// it, so partitions, replication and retention stay the operator's.
	Topic string
	// TLS enables TLS to the brokers. It is cloned; MinVersion is raised to
	// TLS 1.2 and a config with InsecureSkipVerify is refused: certificate
	// verification is always on. ServerName defaults to each broker's host.
	TLS *tls.Config
	// SASL, when set, authenticates every broker connection.
	SASL *KafkaSASL
	// ClientID names the client in broker logs and quotas (default
	// "portcullis-activity").
	ClientID string
	// Sink names the store cursor (default "kafka"). Two exporters to
	// different clusters need different sinks.
	Sink string
	// KeyBy is KafkaKeySession (the default) or KafkaKeyEvent.
	KeyBy string
	// BatchMax is the number of events produced before the cursor moves
	// (default 500, at most 10000).
	BatchMax int
	// Poll is how often the store is read when idle (default 200 ms).
	Poll time.Duration
	// ProduceTimeout bounds how long a record not yet sent may wait for a
	// broker before its batch fails and is retried from the cursor; a batch
	// still unacknowledged after it marks the exporter stalled (default 30 s).
	// Records already sent are never given up on: the idempotent producer
	// retries them until a broker answers, so they are neither lost nor
	// written twice.
	ProduceTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts,
	// both of the exporter and of the client's own retries, doubling from
	// one to the other (defaults 250 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// StopTimeout bounds how long Close keeps delivering what is already
	// stored (default 10 s); the rest goes after the next start.
	StopTimeout time.Duration
}

func (c *KafkaConfig) defaults() {
	if c.ClientID == "" {
		c.ClientID = "portcullis-activity"
	}
	if c.Sink == "" {
		c.Sink = "kafka"
	}
	if c.KeyBy == "" {
		c.KeyBy = KafkaKeySession
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 500
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = 30 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(30*time.Second, c.MinBackoff)
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
}

// Validate reports the first field that cannot work, naming it. It applies
// the defaults first.
func (c *KafkaConfig) Validate() error {
	c.defaults()
	if len(c.Brokers) == 0 {
		return errors.New("kafka export: no brokers")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("kafka export: empty broker address")
		}
	}
	if err := validTopic(c.Topic); err != nil {
		return fmt.Errorf("kafka export: %w", err)
	}
	if c.TLS != nil && c.TLS.InsecureSkipVerify {
		return errors.New("kafka export: TLS certificate verification cannot be disabled")
	}
	if c.SASL != nil {
		switch c.SASL.Mechanism {
		case "PLAIN":
			if c.TLS == nil {
				return errors.New("kafka export: SASL PLAIN needs TLS (it sends the password in clear)")
			}
		case "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("kafka export: unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.SASL.Mechanism)
		}
		if c.SASL.User == "" {
			return errors.New("kafka export: SASL user is empty")
		}
	}
	if c.KeyBy != KafkaKeySession && c.KeyBy != KafkaKeyEvent {
		return fmt.Errorf("kafka export: unknown key %q (want %q or %q)", c.KeyBy, KafkaKeySession, KafkaKeyEvent)
	}
	if c.BatchMax > maxReadAfter {
		return fmt.Errorf("kafka export: batch of %d events, at most %d", c.BatchMax, maxReadAfter)
	}
	return nil
}

// validTopic applies Kafka's topic name rule: 1 to 249 of [a-zA-Z0-9._-],
// and not "." or "..".
func validTopic(t string) error {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return fmt.Errorf("invalid topic name %q", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("invalid topic name %q: character %q", t, r)
		}
	}
	return nil
}

// KafkaStatus is a snapshot of a Kafka exporter for metrics and the console.
type KafkaStatus struct {
	Sink  string
	Topic string
	// Cursor is the Seq of the last event the brokers acknowledged.
	Cursor int64
	// Delivered counts events acknowledged since the exporter started;
	// Batches the acknowledged batches.
	Delivered uint64
	Batches   uint64
	// FailedBatches counts batches that failed and are retried from the
	// cursor; ConsecutiveFailures those since the last success.
	FailedBatches       uint64
	ConsecutiveFailures int
	// Stalled is true while a batch has waited longer than ProduceTimeout
	// for its acknowledgement (records already sent are never given up on).
	Stalled bool
	// LastError is the last produce or connection error, kept until the
	// next acknowledged batch; LastErrorAt says when it happened.
	LastError     string
	LastErrorAt   time.Time
	LastDelivered time.Time
}

// Healthy reports whether the last batch was acknowledged and none is stuck.
func (s KafkaStatus) Healthy() bool { return s.ConsecutiveFailures == 0 && !s.Stalled }

// KafkaExporter produces the activity log to a Kafka topic with the
// idempotent producer and acks from all in-sync replicas, in store order,
// and advances its cursor only after a whole batch (or the acknowledged
// prefix of a failed one) was acknowledged: delivery is at-least-once, and
// a repeat always carries the same event ID and bytes. Repeats happen only
// for a batch that failed part way on a multi-partition topic, one that
// Close abandoned after StopTimeout, or one cut off by a crash before its
// cursor moved; the idempotent producer de-duplicates its own retries,
// including across a broker restart.
type KafkaExporter struct {
	store  *Store
	cfg    KafkaConfig
	client *kgo.Client

	cancel context.CancelFunc
	done   chan struct{}
	err    error // run's result, set before done closes

	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	status KafkaStatus
}

// StartKafka validates cfg, builds the producer and starts exporting in the
// background until ctx ends or Close is called; either way Close must be
// called to release the client. Brokers are dialed lazily: an unreachable
// cluster is not an error here but shows in Status.
func (s *Store) StartKafka(ctx context.Context, cfg KafkaConfig) (*KafkaExporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cursor, err := s.Cursor(cfg.Sink)
	if err != nil {
		return nil, err
	}
	k := &KafkaExporter{store: s, cfg: cfg, done: make(chan struct{})}
	k.status = KafkaStatus{Sink: cfg.Sink, Topic: cfg.Topic, Cursor: cursor}
	if k.client, err = kgo.NewClient(k.clientOpts()...); err != nil {
		return nil, fmt.Errorf("kafka export: %w", err)
	}
	ctx, k.cancel = context.WithCancel(ctx)
	go func() {
		defer close(k.done)
		k.err = k.run(ctx)
	}()
	return k, nil
}

func (k *KafkaExporter) clientOpts() []kgo.Opt {
	c := &k.cfg
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DefaultProduceTopic(c.Topic),
		// Idempotence is kgo's default; acks=all is what it requires and
		// what makes an acknowledgement survive a broker's loss.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(max(c.BatchMax, 1000)),
		kgo.RetryBackoffFn(func(tries int) time.Duration { return backoffFor(tries, c.MinBackoff, c.MaxBackoff) }),
		// After a broker comes back, refresh metadata as soon as the
		// backoff allows rather than after kgo's default 5 s.
		kgo.MetadataMinAge(min(c.MaxBackoff, 5*time.Second)),
		kgo.WithHooks(connectHook{k}),
	}
	if c.TLS != nil {
		t := c.TLS.Clone()
		t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
		opts = append(opts, kgo.DialTLSConfig(t))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(saslMechanism(c.SASL)))
	}
	return opts
}

func saslMechanism(s *KafkaSASL) sasl.Mechanism {
	switch s.Mechanism {
	case "PLAIN":
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
	}
	return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
}

// connectHook surfaces dial, TLS and SASL failures in the status: while a
// batch waits on a dead cluster, they are the only errors there are.
type connectHook struct{ k *KafkaExporter }

var _ kgo.HookBrokerConnect = connectHook{}

func (h connectHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.k.noteError(fmt.Errorf("connect to broker %s: %w", net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port)), err))
	}
}

// Status returns the exporter's current state.
func (k *KafkaExporter) Status() KafkaStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

// Done is closed when the exporter has stopped.
func (k *KafkaExporter) Done() <-chan struct{} { return k.done }

// Close stops the exporter: it keeps delivering what is already stored for
// up to StopTimeout while the brokers acknowledge, then closes the client,
// failing whatever is still unacknowledged (it stays behind the cursor and
// goes after the next start). It returns the last delivery error of the
// drain, if it ended on one. Closing twice returns the same result.
func (k *KafkaExporter) Close() error {
	k.closeOnce.Do(func() {
		k.cancel()
		select {
		case <-k.done:
			k.client.Close()
		case <-time.After(k.cfg.StopTimeout):
			k.client.Close() // fails the records in flight, which ends run
			<-k.done
		}
		k.closeErr = k.err
	})
	return k.closeErr
}

// run exports until ctx ends, then delivers what is already stored while
// batches succeed and returns.
func (k *KafkaExporter) run(ctx context.Context) error {
	for {
		n, err := k.exportOnce()
		if ctx.Err() != nil {
			if err == nil && n > 0 {
				continue // drain what was stored before the stop
			}
			return err
		}
		wait := k.cfg.Poll
		if err != nil {
			wait = backoffFor(k.Status().ConsecutiveFailures, k.cfg.MinBackoff, k.cfg.MaxBackoff)
		}
		if err != nil || n == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// exportOnce produces the next batch after the cursor and waits for its
// acknowledgement. It advances the cursor over the acknowledged prefix of
// the batch (all of it on success) and reports how many events that was.
func (k *KafkaExporter) exportOnce() (int, error) {
	events, err := k.store.ReadAfter(k.cfg.Sink, k.cfg.BatchMax)
	if err != nil {
		k.noteFailure(err)
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	recs, err := k.records(events)
	if err != nil {
		k.noteFailure(err)
		return 0, err
	}
	errs := k.produce(recs)
	acked := 0
	for acked < len(errs) && errs[acked] == nil {
		acked++
	}
	if acked > 0 {
		if err := k.store.Advance(k.cfg.Sink, events[acked-1].Seq); err != nil {
			k.noteFailure(err)
			return 0, err
		}
	}
	if acked < len(events) {
		err := fmt.Errorf("kafka export to topic %s: event %s (seq %d): %w", k.cfg.Topic, events[acked].ID, events[acked].Seq, errs[acked])
		k.noteProgress(events[:acked])
		k.noteFailure(err)
		return acked, err
	}
	k.noteProgress(events)
	k.noteSuccess()
	return acked, nil
}

// records encodes events as Kafka records.
func (k *KafkaExporter) records(events []Event) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, len(events))
	for i := range events {
		ev := &events[i]
		value, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("kafka export: event %s: %w", ev.ID, err)
		}
		id := ev.ID.String()
		key := id
		if k.cfg.KeyBy == KafkaKeySession && ev.SessionID != "" {
			key = ev.SessionID
		}
		recs[i] = &kgo.Record{
			Key:       []byte(key),
			Value:     value,
			Timestamp: ev.Time,
			Headers:   []kgo.RecordHeader{{Key: KafkaHeaderEventID, Value: []byte(id)}},
		}
	}
	return recs, nil
}

// produce sends recs and waits for every promise, marking the exporter
// stalled while they take longer than ProduceTimeout. It returns each
// record's error (nil when acknowledged), in the order of recs.
func (k *KafkaExporter) produce(recs []*kgo.Record) []error {
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	// kgo fails a record when this context ends only if it is safe: not
	// yet sent, or answered. Records already sent are retried until a
	// broker answers, so the idempotent producer neither loses nor repeats
	// them; Close unblocks such a batch by closing the client. (kgo's
	// RecordDeliveryTimeout is not used: it counts from the record
	// timestamp, which is the event's time, so a backlog would never go.)
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.ProduceTimeout)
	defer cancel()
	for i, r := range recs {
		k.client.Produce(ctx, r, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()

	stall := time.NewTimer(k.cfg.ProduceTimeout)
	defer stall.Stop()
	select {
	case <-all:
		return errs
	case <-stall.C:
	}
	k.mu.Lock()
	k.status.Stalled = true
	k.mu.Unlock()
	k.noteError(fmt.Errorf("kafka export to topic %s: batch of %d events not acknowledged after %s", k.cfg.Topic, len(recs), k.cfg.ProduceTimeout))
	<-all
	k.mu.Lock()
	k.status.Stalled = false
	k.mu.Unlock()
	return errs
}

func (k *KafkaExporter) noteProgress(events []Event) {
	if len(events) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status.Cursor = events[len(events)-1].Seq
	k.status.Delivered += uint64(len(events))
	k.status.LastDelivered = time.Now()
}

func (k *KafkaExporter) noteSuccess() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status.Batches++
	k.status.ConsecutiveFailures = 0
	k.status.LastError = ""
	k.status.LastErrorAt = time.Time{}
}

func (k *KafkaExporter) noteFailure(err error) {
	k.mu.Lock()
	k.status.FailedBatches++
	k.status.ConsecutiveFailures++
	k.mu.Unlock()
	k.noteError(err)
	k.store.NoteSinkError(k.cfg.Sink, err)
}

func (k *KafkaExporter) noteError(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status.LastError = err.Error()
	k.status.LastErrorAt = time.Now()
}

// backoffFor is lo·2^(failures-1), capped at hi, minus up to 25 % jitter so
// many appliances do not reconnect in lockstep. Every exporter uses it.
func backoffFor(failures int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}
