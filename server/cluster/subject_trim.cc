#include "server/cluster/subject_trim.h"

namespace rta::cluster {

bool PurgeSubjectBelow(jsCtx* js, const std::string& stream, const std::string& subject,
                       uint64_t below, std::string* why) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Stream.Purge.Subject = subject.c_str();
  options.Stream.Purge.Sequence = below;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_PurgeStream(js, stream.c_str(), &options, &code);
  if (status == NATS_OK) return true;
  *why = "purging " + subject + " below stream sequence " + std::to_string(below) + " in " +
         stream + ": " + DescribeNats(status, code);
  return false;
}

}  // namespace rta::cluster
