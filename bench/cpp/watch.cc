// WatchPublishJobs watchers in C++: the fan-out's client side, at a fraction of grpc.aio's CPU.
//
// A grpc.aio watcher spends about as much CPU per update as the server that sends it (95 against
// 84 us per delivery in bench/notifier_fanout.py), and on a 2-core machine that CPU is taken from
// the server being measured. This program speaks the protocol of `python -m bench.worker watch`, so
// bench.platform_bench runs either:
//
//   watch ADDR PARENT COUNT   (token in BENCH_TOKEN)
//
// opens COUNT streams on one HTTP/2 connection (as the grpc.aio worker's channels share one), prints
// READY once every stream is open or has failed, and on stdin EOF cancels them and prints one JSON
// line: {"delays": [s per update, arrival - job.update_time], "per_stream": [updates], "errors":
// [...], "error_count": n, "cpu_s": this process's CPU time after READY}. Heartbeats are not counted.
//
//   decode   (a self-test of the wire parser: one hex-encoded PublishJobUpdate per stdin line in,
//             "heartbeat", "undecodable" or the update_time in seconds, to the microsecond, per line out)
//
// Requests are built and answers read from the protobuf wire format by hand (two fields each), so
// the program needs only gRPC's generic stub, not code generated from protos/.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr char kMethod[] = "/speako.notifier.v1.NotifierService/WatchPublishJobs";
constexpr size_t kMaxErrorsKept = 20;

// --- protobuf wire format (just what is needed) ------------------------------------------------

bool ReadVarint(const std::string& b, size_t& i, uint64_t& out) {
  out = 0;
  for (int shift = 0; shift < 64 && i < b.size(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(b[i++]);
    out |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

// Calls fn(field, wire_type, varint, bytes) for each field; false on malformed input. Groups (wire
// types 3 and 4, deprecated) never occur in these messages and count as malformed.
template <typename Fn>
bool ForEachField(const std::string& b, Fn fn) {
  size_t i = 0;
  while (i < b.size()) {
    uint64_t key, value = 0;
    if (!ReadVarint(b, i, key)) return false;
    const int field = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
    std::string bytes;
    if (type == 0) {
      if (!ReadVarint(b, i, value)) return false;
    } else if (type == 2) {
      if (!ReadVarint(b, i, value) || value > b.size() - i) return false;
      bytes = b.substr(i, value);
      i += value;
    } else if (type == 1 || type == 5) {
      const size_t width = type == 1 ? 8 : 4;
      if (width > b.size() - i) return false;
      i += width;
    } else {
      return false;
    }
    fn(field, type, value, bytes);
  }
  return true;
}

std::string LengthDelimited(int field, const std::string& value) {
  std::string out(1, static_cast<char>(field << 3 | 2));
  uint64_t n = value.size();
  do {
    uint8_t byte = n & 0x7f;
    n >>= 7;
    out.push_back(static_cast<char>(n ? byte | 0x80 : byte));
  } while (n);
  return out + value;
}

struct Update {
  bool heartbeat = false;
  double update_time = 0;  // seconds since the epoch (PublishJob.update_time)
};

// PublishJobUpdate{job = 1 (PublishJob{update_time = 7 (Timestamp{seconds = 1, nanos = 2})}),
// heartbeat = 3}; false when the bytes are not such a message.
bool Decode(const std::string& message, Update& out) {
  std::string job;
  out = Update{};
  if (!ForEachField(message, [&](int f, int t, uint64_t v, const std::string& b) {
        if (f == 1 && t == 2) job = b;
        if (f == 3 && t == 0) out.heartbeat = v != 0;
      }))
    return false;
  std::string stamp;
  if (!ForEachField(job, [&](int f, int t, uint64_t, const std::string& b) {
        if (f == 7 && t == 2) stamp = b;
      }))
    return false;
  int64_t secs = 0, nanos = 0;
  if (!ForEachField(stamp, [&](int f, int t, uint64_t v, const std::string&) {
        if (f == 1 && t == 0) secs = static_cast<int64_t>(v);
        if (f == 2 && t == 0) nanos = static_cast<int64_t>(v);
      }))
    return false;
  out.update_time = static_cast<double>(secs) + static_cast<double>(nanos) / 1e9;
  return true;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A JSON string of printable ASCII (anything else becomes '?', so the reader never meets bad UTF-8).
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += u < 0x20 || u > 0x7e ? '?' : c;
    }
  }
  return out + "\"";
}

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",       "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",  "OUT_OF_RANGE",       "UNIMPLEMENTED",     "INTERNAL",         "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  const auto i = static_cast<size_t>(code);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "UNKNOWN";
}

int DecodeLines() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::string bytes;
    bool hex_ok = line.size() % 2 == 0;
    for (size_t i = 0; hex_ok && i < line.size(); i += 2) {
      char* end = nullptr;
      const std::string pair = line.substr(i, 2);
      const long byte = std::strtol(pair.c_str(), &end, 16);
      hex_ok = end == pair.c_str() + 2;
      bytes.push_back(static_cast<char>(byte));
    }
    Update update;
    if (!hex_ok || !Decode(bytes, update)) {
      std::printf("undecodable\n");
    } else if (update.heartbeat) {
      std::printf("heartbeat\n");
    } else {
      std::printf("%.6f\n", update.update_time);
    }
  }
  return 0;
}

// --- one stream ----------------------------------------------------------------------------------

enum class Step { kStart, kWrite, kRead, kFinish };

struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
  grpc::ByteBuffer buffer;
  grpc::Status status;
  Step step = Step::kStart;
  int updates = 0;
  bool undecodable = false;
  bool settled = false;  // open, or failed before it opened
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "decode") return DecodeLines();
  char* end = nullptr;
  const long count = argc == 5 ? std::strtol(argv[4], &end, 10) : -1;
  const char* token = std::getenv("BENCH_TOKEN");
  if (argc != 5 || std::string(argv[1]) != "watch" || *end != '\0' || count < 0 || token == nullptr) {
    std::cerr << "usage: watch ADDR PARENT COUNT (token in BENCH_TOKEN) | decode\n";
    return 2;
  }
  const std::string addr = argv[2], parent = argv[3];
  const std::string request = LengthDelimited(1, parent);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  grpc::GenericStub stub(grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args));

  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<double> delays;
  std::vector<std::string> errors;
  int error_count = 0;
  // Streams open or failed: read by the main thread while the completion thread counts.
  std::atomic<int> settled{0};
  int finished = 0;
  for (long i = 0; i < count; ++i) {
    auto s = std::make_unique<Stream>();
    s->context.AddMetadata("authorization", std::string("Bearer ") + token);
    s->call = stub.PrepareCall(&s->context, kMethod, &queue);
    s->call->StartCall(s.get());
    streams.push_back(std::move(s));
  }

  auto error = [&](const std::string& text) {
    ++error_count;
    if (errors.size() < kMaxErrorsKept) errors.push_back(text);
  };
  auto settle = [&](Stream* s) {
    if (!s->settled) {
      s->settled = true;
      ++settled;
    }
  };
  auto finish = [&](Stream* s) {
    s->step = Step::kFinish;
    s->call->Finish(&s->status, s);
  };

  // Every completion is handled on this thread; main waits for stdin's EOF meanwhile.
  std::thread worker([&] {
    void* tag;
    bool ok;
    while (finished < count && queue.Next(&tag, &ok)) {
      auto* s = static_cast<Stream*>(tag);
      switch (s->step) {
        case Step::kStart:
          if (!ok) {
            finish(s);
            break;
          }
          {
            grpc::Slice slice(request);
            grpc::ByteBuffer message(&slice, 1);
            s->step = Step::kWrite;
            s->call->WriteLast(message, grpc::WriteOptions(), s);
          }
          break;
        case Step::kWrite:
          if (!ok) {
            finish(s);
            break;
          }
          settle(s);
          s->step = Step::kRead;
          s->call->Read(&s->buffer, s);
          break;
        case Step::kRead: {
          if (!ok) {
            finish(s);
            break;
          }
          const double arrived = WallSeconds();
          std::vector<grpc::Slice> slices;
          std::string bytes;
          if (s->buffer.Dump(&slices).ok()) {
            for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
          }
          Update update;
          if (!Decode(bytes, update)) {
            // As grpc.aio would fail the stream on a response it cannot parse.
            s->undecodable = true;
            s->context.TryCancel();
          } else if (!update.heartbeat) {
            delays.push_back(arrived - update.update_time);
            ++s->updates;
          }
          s->call->Read(&s->buffer, s);
          break;
        }
        case Step::kFinish:
          if (s->undecodable) {
            error("INTERNAL: an update that is not a PublishJobUpdate");
          } else if (!s->status.ok() && s->status.error_code() != grpc::StatusCode::CANCELLED) {
            error(std::string(CodeName(s->status.error_code())) + ": " + s->status.error_message());
          }
          settle(s);
          ++finished;
          break;
      }
    }
  });

  // READY once every stream is open or has failed (at most a minute), then a second of quiet, as
  // bench.worker does.
  for (int waited_ms = 0; settled < count && waited_ms < 60000; waited_ms += 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  // CPU from here on: the updates, not the opening of the streams.
  const double cpu_start = CpuSeconds();
  std::printf("READY\n");
  std::fflush(stdout);

  std::string ignored;
  while (std::getline(std::cin, ignored)) {
  }
  for (auto& s : streams) s->context.TryCancel();
  worker.join();
  queue.Shutdown();
  void* tag;
  bool ok;
  while (queue.Next(&tag, &ok)) {
  }

  std::string out = "{\"delays\": [";
  for (size_t i = 0; i < delays.size(); ++i) {
    char number[32];
    std::snprintf(number, sizeof number, "%s%.6f", i ? ", " : "", delays[i]);
    out += number;
  }
  out += "], \"per_stream\": [";
  for (size_t i = 0; i < streams.size(); ++i) out += (i ? ", " : "") + std::to_string(streams[i]->updates);
  out += "], \"errors\": [";
  for (size_t i = 0; i < errors.size(); ++i) out += (i ? ", " : "") + JsonString(errors[i]);
  char cpu[64];
  std::snprintf(cpu, sizeof cpu, "%.6f", CpuSeconds() - cpu_start);
  out += "], \"error_count\": " + std::to_string(error_count) + ", \"cpu_s\": " + cpu + "}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}
