// refserver: the plain grpc-go AnalyticsService that fan-out is measured against (issue 14,
// `load_driver --scenario fanout-go`). Deliberately the simplest idiomatic design, not a
// product: every subscriber's stream sits in one map under one mutex, and a ticker goroutine
// calls stream.Send for each of them in a loop every tick. What it serves is only what the
// benchmark needs: SubscribeMetrics and SubscribeMetricBatches (an initial snapshot, then the
// requested series every tick), ReportEvent and ReportEventBatches (counted), GetMetrics.
//
// Command line: --listen HOST:PORT (port 0: any free port) and --tick-ms N. The load driver
// starts it exactly like analytics_server, so any other "--flag value" pair is ignored. Once
// listening it writes "event=listening address=HOST port=N" to stderr.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"

	pb "rta/analyticspb"
)

// A series a subscriber asked for.
type series struct {
	metric string
	window pb.Window
}

// One subscriber: its stream and what it asked for. Send is called only by the goroutine
// that holds server.mu (the handler before registering, the ticker after).
type subscriber struct {
	series  []series
	batched bool
	plain   pb.AnalyticsService_SubscribeMetricsServer
	batch   pb.AnalyticsService_SubscribeMetricBatchesServer
	done    chan struct{} // closed when a Send fails; the handler then returns
}

type server struct {
	pb.UnimplementedAnalyticsServiceServer
	mu          sync.Mutex
	subscribers map[*subscriber]struct{}
	events      uint64 // atomic
	sequence    uint64 // atomic: the tick number
}

func (s *server) value(metric string) float64 {
	if metric == "events_total" {
		return float64(atomic.LoadUint64(&s.events))
	}
	return 0
}

func seriesOf(request *pb.SubscriptionRequest) []series {
	metrics := request.MetricTypes
	if len(metrics) == 0 {
		metrics = []string{"events_total"}
	}
	var windows []pb.Window
	for _, w := range request.Windows {
		if w != pb.Window_WINDOW_UNSPECIFIED {
			windows = append(windows, w)
		}
	}
	if len(windows) == 0 {
		windows = []pb.Window{pb.Window_WINDOW_TOTAL}
	}
	var out []series
	for _, m := range metrics {
		for _, w := range windows {
			out = append(out, series{m, w})
		}
	}
	return out
}

func (s *server) updates(sub *subscriber, kind pb.UpdateKind) []*pb.MetricUpdate {
	sequence := atomic.LoadUint64(&s.sequence)
	now := time.Now().UnixNano() / int64(time.Millisecond)
	updates := make([]*pb.MetricUpdate, 0, len(sub.series)+1)
	for _, x := range sub.series {
		updates = append(updates, &pb.MetricUpdate{
			MetricType: x.metric, Value: s.value(x.metric), Window: x.window,
			Sequence: sequence, Epoch: 1, Kind: kind, Timestamp: now / 1000, TimestampMs: now,
		})
	}
	return updates
}

func (s *server) send(sub *subscriber, updates []*pb.MetricUpdate) error {
	if sub.batched {
		return sub.batch.Send(&pb.MetricUpdateBatch{Updates: updates})
	}
	for _, u := range updates {
		if err := sub.plain.Send(u); err != nil {
			return err
		}
	}
	return nil
}

// serve sends the initial snapshot, registers the subscriber and waits for the client to go.
func (s *server) serve(ctx context.Context, sub *subscriber) error {
	sub.done = make(chan struct{})
	initial := s.updates(sub, pb.UpdateKind_UPDATE_KIND_SNAPSHOT)
	initial = append(initial, &pb.MetricUpdate{
		Kind: pb.UpdateKind_UPDATE_KIND_SNAPSHOT_END, Sequence: atomic.LoadUint64(&s.sequence), Epoch: 1,
	})
	s.mu.Lock()
	err := s.send(sub, initial)
	if err == nil {
		s.subscribers[sub] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-sub.done:
	}
	s.mu.Lock()
	delete(s.subscribers, sub)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *server) SubscribeMetrics(request *pb.SubscriptionRequest, stream pb.AnalyticsService_SubscribeMetricsServer) error {
	return s.serve(stream.Context(), &subscriber{series: seriesOf(request), plain: stream})
}

func (s *server) SubscribeMetricBatches(request *pb.SubscriptionRequest, stream pb.AnalyticsService_SubscribeMetricBatchesServer) error {
	return s.serve(stream.Context(), &subscriber{series: seriesOf(request), batched: true, batch: stream})
}

// tick sends every subscriber its series, one after the other, under the one mutex.
func (s *server) tick(period time.Duration) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for range ticker.C {
		atomic.AddUint64(&s.sequence, 1)
		s.mu.Lock()
		for sub := range s.subscribers {
			if err := s.send(sub, s.updates(sub, pb.UpdateKind_UPDATE_KIND_DELTA)); err != nil {
				delete(s.subscribers, sub)
				close(sub.done)
			}
		}
		s.mu.Unlock()
	}
}

func (s *server) ReportEventBatches(stream pb.AnalyticsService_ReportEventBatchesServer) error {
	var accepted uint64
	for {
		batch, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.EventResponse{Accepted: accepted})
		}
		if err != nil {
			return err
		}
		accepted += uint64(len(batch.Events))
		atomic.AddUint64(&s.events, uint64(len(batch.Events)))
	}
}

func (s *server) ReportEvent(stream pb.AnalyticsService_ReportEventServer) error {
	var accepted uint64
	for {
		_, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.EventResponse{Accepted: accepted})
		}
		if err != nil {
			return err
		}
		accepted++
		atomic.AddUint64(&s.events, 1)
	}
}

func (s *server) GetMetrics(ctx context.Context, query *pb.MetricsQuery) (*pb.MetricsSnapshot, error) {
	return &pb.MetricsSnapshot{
		Metrics: []*pb.MetricUpdate{{
			MetricType: "events_total", Value: s.value("events_total"), Window: pb.Window_WINDOW_TOTAL,
			Kind: pb.UpdateKind_UPDATE_KIND_SNAPSHOT, Epoch: 1,
		}},
		Sequence: atomic.LoadUint64(&s.sequence), Epoch: 1,
		TimestampMs: time.Now().UnixNano() / int64(time.Millisecond),
	}, nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "refserver: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	listen := "127.0.0.1:50051"
	tickMs := 1000
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		flag := args[i]
		if i+1 >= len(args) {
			fail("%s: missing value", flag)
		}
		value := args[i+1]
		i++
		switch flag {
		case "--listen":
			listen = value
		case "--tick-ms":
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				fail("--tick-ms: expected a positive number, got %q", value)
			}
			tickMs = n
		default: // analytics_server's flags: not ours
		}
	}
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		fail("listen %s: %v", listen, err)
	}
	address := listener.Addr().(*net.TCPAddr)
	grpcServer := grpc.NewServer()
	s := &server{subscribers: map[*subscriber]struct{}{}}
	pb.RegisterAnalyticsServiceServer(grpcServer, s)
	go s.tick(time.Duration(tickMs) * time.Millisecond)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		grpcServer.Stop()
		os.Exit(0)
	}()
	fmt.Fprintf(os.Stderr, "event=listening address=%s port=%d\n", address.IP, address.Port)
	if err := grpcServer.Serve(listener); err != nil {
		fail("serve: %v", err)
	}
}
