#include "server/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <chrono>
#include <unordered_set>

#include "server/callback_handoff.h"
#include "server/peer_address.h"

namespace rta::server {
namespace {

namespace refl = grpc::reflection::v1alpha;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

// Adds `file` and, after it, every file it imports (transitively), each once.
void AddFileAndImports(const FileDescriptor* file, std::unordered_set<std::string>* sent,
                       refl::FileDescriptorResponse* out) {
  if (!sent->insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFileAndImports(file->dependency(i), sent, out);
  }
}

void SetError(grpc::StatusCode code, const std::string& message,
              refl::ServerReflectionResponse* response) {
  response->mutable_error_response()->set_error_code(static_cast<int32_t>(code));
  response->mutable_error_response()->set_error_message(message);
}

class ReflectionReactor final : public grpc::ServerBidiReactor<refl::ServerReflectionRequest,
                                                               refl::ServerReflectionResponse> {
 public:
  ReflectionReactor(const ReflectionService& service, grpc::Status refusal)
      : service_(service), start_(std::chrono::steady_clock::now()) {
    service_.metrics().open_streams(Method::kServerReflectionInfo).Increment();
    if (!refusal.ok()) code_ = refusal.error_code();
    ReactorCreated(this);
    if (!refusal.ok()) {
      Finish(refusal);
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    const ReactionScope reaction(this);
    if (!ok) {  // the client has sent everything (or the call is gone)
      Finish(grpc::Status::OK);
      return;
    }
    response_ = service_.Answer(request_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    const ReactionScope reaction(this);
    if (!ok) {
      code_ = grpc::StatusCode::CANCELLED;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    DoneEntered(this);
    service_.metrics().open_streams(Method::kServerReflectionInfo).Decrement();
    service_.metrics().RpcHandled(
        Method::kServerReflectionInfo, code_,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    delete this;
  }

 private:
  const ReflectionService& service_;
  const std::chrono::steady_clock::time_point start_;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  refl::ServerReflectionRequest request_;
  refl::ServerReflectionResponse response_;
};

}  // namespace

grpc::ServerBidiReactor<refl::ServerReflectionRequest, refl::ServerReflectionResponse>*
ReflectionService::ServerReflectionInfo(grpc::CallbackServerContext* context) {
  grpc::Status status = grpc::Status::OK;
  if (!IsLoopbackPeer(context->peer())) {
    auth::Principal principal;
    status = authenticator_.Check(*context, MethodName(Method::kServerReflectionInfo),
                                  clock_.NowMs(), &principal);
    if (!status.ok()) metrics_.AddAuthRefused(Method::kServerReflectionInfo, status.error_code());
  }
  return new ReflectionReactor(*this, std::move(status));
}

refl::ServerReflectionResponse ReflectionService::Answer(
    const refl::ServerReflectionRequest& request) const {
  std::unordered_set<std::string> sent_set;  // per request: each answer stands alone
  std::unordered_set<std::string>* sent = &sent_set;
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  refl::ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  switch (request.message_request_case()) {
    case refl::ServerReflectionRequest::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      break;
    case refl::ServerReflectionRequest::kFileByFilename: {
      const FileDescriptor* file = pool->FindFileByName(request.file_by_filename());
      if (file == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 "file_by_filename: no file '" + request.file_by_filename() + "' in this server",
                 &response);
      } else {
        AddFileAndImports(file, sent, response.mutable_file_descriptor_response());
      }
      break;
    }
    case refl::ServerReflectionRequest::kFileContainingSymbol: {
      const FileDescriptor* file = pool->FindFileContainingSymbol(request.file_containing_symbol());
      if (file == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 "file_containing_symbol: no symbol '" + request.file_containing_symbol() +
                     "' in this server",
                 &response);
      } else {
        AddFileAndImports(file, sent, response.mutable_file_descriptor_response());
      }
      break;
    }
    case refl::ServerReflectionRequest::kFileContainingExtension: {
      const refl::ExtensionRequest& ask = request.file_containing_extension();
      const auto* type = pool->FindMessageTypeByName(ask.containing_type());
      const auto* extension =
          type == nullptr ? nullptr : pool->FindExtensionByNumber(type, ask.extension_number());
      if (extension == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 "file_containing_extension: no extension " +
                     std::to_string(ask.extension_number()) + " of '" + ask.containing_type() + "'",
                 &response);
      } else {
        AddFileAndImports(extension->file(), sent, response.mutable_file_descriptor_response());
      }
      break;
    }
    case refl::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const auto* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 "all_extension_numbers_of_type: no message type '" +
                     request.all_extension_numbers_of_type() + "'",
                 &response);
      } else {
        std::vector<const google::protobuf::FieldDescriptor*> extensions;
        pool->FindAllExtensions(type, &extensions);
        auto* numbers = response.mutable_all_extension_numbers_response();
        numbers->set_base_type_name(type->full_name());
        for (const auto* field : extensions) numbers->add_extension_number(field->number());
      }
      break;
    }
    case refl::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(grpc::StatusCode::INVALID_ARGUMENT,
               "message_request: empty; set one of file_by_filename, file_containing_symbol, "
               "file_containing_extension, all_extension_numbers_of_type, list_services",
               &response);
      break;
  }
  return response;
}

}  // namespace rta::server
