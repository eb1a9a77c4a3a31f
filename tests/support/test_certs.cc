#include "tests/support/test_certs.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rta::testing {

bool MakeTestCertificates(const std::string& dir, std::string* error) {
  const std::string script = R"(set -e
cd ")" + dir + R"("
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=rta-test-ca
key other_ca.key
openssl req -x509 -new -key other_ca.key -out other_ca.pem -days 2 -subj /CN=rta-other-ca
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
sign() {  # name cn ca ext
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" \
    -days 2 -extfile "$4" 2>/dev/null
}
sign server_a server-a ca server.ext
sign server_b server-b ca server.ext
sign client client ca client.ext
sign stranger stranger other_ca client.ext
)";
  const std::string script_path = dir + "/make_certs.sh";
  std::ofstream(script_path) << script;
  const std::string log_path = dir + "/make_certs.log";
  const int status = std::system(("bash '" + script_path + "' >'" + log_path + "' 2>&1").c_str());
  if (status != 0) {
    *error = "openssl failed: " + ReadWholeFile(log_path);
    return false;
  }
  return true;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

}  // namespace rta::testing
