// WatchPublishJobs watchers in C++: the fan-out's client side, at a few microseconds per update.
//
// A grpc.aio watcher spends about as much CPU per update as the server that sends it (95 against
// 77 us per delivery in bench/notifier_fanout.py), and on a 2-core machine that CPU is taken from
// the server being measured. This program speaks the protocol of `python -m bench.worker watch`, so
// bench.platform_bench runs either:
//
//   watch ADDR PARENT COUNT   (token in BENCH_TOKEN)
//
// opens COUNT streams (100 per connection), prints READY once they are open, and on stdin EOF
// cancels them and prints one JSON line: {"delays": [s per update, arrival - job.update_time],
// "per_stream": [updates], "errors": [...], "error_count": n}. Heartbeats are not counted.
//
// Requests are built and answers read from the protobuf wire format by hand (two fields each), so
// the program needs only gRPC's generic stub, not code generated from protos/.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
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
constexpr int kStreamsPerConnection = 100;

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

// Calls fn(field, wire_type, varint, bytes) for each field; false on malformed input.
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
      i += type == 1 ? 8 : 4;
      if (i > b.size()) return false;
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

// PublishJobUpdate{job = 1 (PublishJob{update_time = 7 (Timestamp{seconds = 1, nanos = 2})}),
// heartbeat = 3}: the job's update_time in seconds, or a negative value for a heartbeat.
bool UpdateTime(const std::string& update, double& seconds) {
  std::string job;
  bool heartbeat = false;
  if (!ForEachField(update, [&](int f, int t, uint64_t v, const std::string& b) {
        if (f == 1 && t == 2) job = b;
        if (f == 3 && t == 0) heartbeat = v != 0;
      }))
    return false;
  if (heartbeat) {
    seconds = -1;
    return true;
  }
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
  seconds = static_cast<double>(secs) + static_cast<double>(nanos) / 1e9;
  return true;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// --- one stream ----------------------------------------------------------------------------------

enum class Step { kStart, kWrite, kWritesDone, kRead, kFinish };

struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
  grpc::ByteBuffer buffer;
  grpc::Status status;
  Step step = Step::kStart;
  int updates = 0;
  bool done = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || std::string(argv[1]) != "watch") {
    std::cerr << "usage: watch ADDR PARENT COUNT (token in BENCH_TOKEN)\n";
    return 2;
  }
  const std::string addr = argv[2], parent = argv[3];
  const int count = std::atoi(argv[4]);
  const char* token = std::getenv("BENCH_TOKEN");
  if (token == nullptr || count <= 0) {
    std::cerr << "BENCH_TOKEN and a positive COUNT are required\n";
    return 2;
  }
  const std::string request = LengthDelimited(1, parent);

  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < std::max(1, count / kStreamsPerConnection); ++i) {
    grpc::ChannelArguments args;
    // A connection of its own per channel (channels with equal arguments would share one).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args)));
  }

  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<double> delays;
  std::vector<std::string> errors;
  int error_count = 0;
  // Read by the main thread while the completion thread counts.
  std::atomic<int> open{0}, finished{0};
  for (int i = 0; i < count; ++i) {
    auto s = std::make_unique<Stream>();
    s->context.AddMetadata("authorization", std::string("Bearer ") + token);
    s->call = stubs[i % stubs.size()]->PrepareCall(&s->context, kMethod, &queue);
    s->call->StartCall(s.get());
    streams.push_back(std::move(s));
  }

  auto send = [&](Stream* s) {
    grpc::Slice slice(request);
    grpc::ByteBuffer message(&slice, 1);
    s->step = Step::kWrite;
    s->call->Write(message, s);
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
          if (ok) {
            send(s);
          } else {
            finish(s);
          }
          break;
        case Step::kWrite:
          if (ok) {
            s->step = Step::kWritesDone;
            s->call->WritesDone(s);
          } else {
            finish(s);
          }
          break;
        case Step::kWritesDone:
          if (!ok) {
            finish(s);
            break;
          }
          ++open;
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
          double changed;
          if (!UpdateTime(bytes, changed)) {
            ++error_count;
            if (errors.size() < 20) errors.push_back("undecodable update");
          } else if (changed >= 0) {
            delays.push_back(arrived - changed);
            ++s->updates;
          }
          s->call->Read(&s->buffer, s);
          break;
        }
        case Step::kFinish:
          if (!s->status.ok() && s->status.error_code() != grpc::StatusCode::CANCELLED) {
            ++error_count;
            if (errors.size() < 20) {
              errors.push_back(std::to_string(static_cast<int>(s->status.error_code())) + ": " +
                               s->status.error_message());
            }
          }
          s->done = true;
          ++finished;
          break;
      }
    }
  });

  // READY once every stream is open (its request written) and has been idle for a second, as
  // bench.worker does.
  for (int waited_ms = 0; open + finished < count && waited_ms < 60000; waited_ms += 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
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
  out += "], \"error_count\": " + std::to_string(error_count) + "}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}
