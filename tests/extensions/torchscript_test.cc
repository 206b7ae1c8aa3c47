// org.symphony.torchscript on real models: the test suite makes small
// TorchScript files with Debian's python3-torch (a Linear layer with fixed
// weights and a ReLU, a module with two outputs and a dict-returning method),
// then checks exact results, the two tensor forms, the errors a user meets
// (wrong shape or dtype, a file that is not a model, a missing file), the
// cache's reload when the file changes, and that the manifest matches the code.
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>

#include "extensions/torchscript/module_cache.h"
#include "extensions/torchscript/tensor_codec.h"
#include "extensions/torchscript/torch_error.h"
#include "extensions/torchscript/torchscript_ops.h"
#include "stage/manifest.h"
#include "tests/support/temp_dir.h"

namespace symphony::extensions::torchscript {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

at::Tensor json_tensor(const json& value) {
  auto t = tensor_from_json(value, "t");
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message());
  return t ? *t : at::Tensor();
}

json to_json(const at::Tensor& tensor) {
  auto j = tensor_to_json(tensor);
  EXPECT_TRUE(j.has_value()) << (j ? "" : j.error().message());
  return j ? *j : json();
}

std::string json_error(const json& value) {
  auto t = tensor_from_json(value, "params.inputs[0]");
  EXPECT_FALSE(t.has_value()) << "accepted " << value.dump();
  return t ? std::string() : t.error().message();
}

std::string decode_error(std::string_view bytes) {
  auto t = decode_tensor(bytes, "input 'tensors'[0]");
  EXPECT_FALSE(t.has_value());
  return t ? std::string() : t.error().message();
}

// --- JSON form -----------------------------------------------------------------

TEST(TensorJson, RoundTripsEveryDtypeExactly) {
  const json cases[] = {
      {{"dtype", "float32"}, {"shape", {2, 2}}, {"data", {0.1, -2.5, 1e-30, 3.0}}},
      {{"dtype", "float64"}, {"shape", {3}}, {"data", {0.1, -1e300, 5e-324}}},
      {{"dtype", "int64"},
       {"shape", {2}},
       {"data", {std::numeric_limits<std::int64_t>::min(), 9007199254740993}}},
      {{"dtype", "int32"}, {"shape", {1, 2}}, {"data", {-2147483648, 2147483647}}},
      {{"dtype", "uint8"}, {"shape", {3}}, {"data", {0, 128, 255}}},
      {{"dtype", "bool"}, {"shape", {2, 1}}, {"data", {true, false}}},
      {{"dtype", "float32"}, {"shape", json::array()}, {"data", {42.0}}},  // a scalar
      {{"dtype", "int64"}, {"shape", {0, 3}}, {"data", json::array()}},    // empty
  };
  for (const json& c : cases) {
    at::Tensor t = json_tensor(c);
    EXPECT_EQ(to_json(t), c) << c.dump();
  }
}

TEST(TensorJson, Float32ElementsPrintShortAndReadBackTheSameFloat) {
  at::Tensor t = json_tensor({{"data", {0.1, 1.0 / 3.0}}});
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  json out = to_json(t);
  EXPECT_EQ(out["data"].dump(), "[0.1,0.33333334]");
  EXPECT_TRUE(at::equal(json_tensor(out), t));
}

TEST(TensorJson, DefaultsToFloat32AndAFlatShape) {
  at::Tensor t = json_tensor({{"data", {1, 2, 3}}});
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_EQ(t.sizes().vec(), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(to_json(t), (json{{"dtype", "float32"}, {"shape", {3}}, {"data", {1.0, 2.0, 3.0}}}));
}

TEST(TensorJson, NonFiniteFloatsAreStrings) {
  json c = {{"dtype", "float64"}, {"shape", {3}}, {"data", {"NaN", "Infinity", "-Infinity"}}};
  at::Tensor t = json_tensor(c);
  EXPECT_TRUE(std::isnan(t[0].item<double>()));
  EXPECT_EQ(t[1].item<double>(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(to_json(t), c);
}

TEST(TensorJson, ErrorsNameTheFieldAndTheElement) {
  EXPECT_EQ(json_error({{"shape", {2, 2}}, {"data", {1, 2, 3}}}),
            "params.inputs[0]: shape [2, 2] holds 4 elements, data has 3");
  EXPECT_EQ(json_error({{"dtype", "float16"}, {"data", {1}}}),
            "params.inputs[0].dtype: \"float16\" is not one of float32, float64, int64, int32, "
            "uint8, bool");
  EXPECT_EQ(json_error({{"dtype", "uint8"}, {"data", {1, 300}}}),
            "params.inputs[0].data[1]: 300 is out of range for uint8");
  EXPECT_EQ(json_error({{"dtype", "int64"}, {"data", {1.5}}}),
            "params.inputs[0].data[0]: expected an integer for int64, got 1.5");
  EXPECT_EQ(json_error({{"dtype", "int32"}, {"data", {4294967296}}}),
            "params.inputs[0].data[0]: 4294967296 is out of range for int32");
  EXPECT_EQ(json_error({{"data", {1e39}}}),
            "params.inputs[0].data[0]: 1e+39 is out of range for float32");
  EXPECT_EQ(json_error({{"dtype", "bool"}, {"data", {1}}}),
            "params.inputs[0].data[0]: expected true or false for bool, got 1");
  EXPECT_EQ(json_error({{"data", {1}}, {"dtpye", "int64"}}),
            "params.inputs[0].dtpye: unknown field (expected dtype, shape, data)");
  EXPECT_EQ(json_error({{"shape", {-1}}, {"data", json::array()}}),
            "params.inputs[0].shape[0]: expected a size (an integer >= 0), got -1");
  EXPECT_EQ(json_error({{"shape", {2}}}), "params.inputs[0].data: missing required field");
  EXPECT_EQ(json_error(json::array({1, 2})),
            R"(params.inputs[0]: expected a tensor {"dtype", "shape", "data"}, got array)");
}

// --- Binary form ---------------------------------------------------------------

TEST(TensorBinary, LayoutIsTheDocumentedOne) {
  at::Tensor t = json_tensor({{"dtype", "int32"}, {"shape", {2, 1}}, {"data", {1, -2}}});
  auto bytes = encode_tensor(t);
  ASSERT_TRUE(bytes) << bytes.error().message();
  const std::string expected(
      "SYMT\x01\x04\x02\x00"               // magic, version 1, int32, 2 dims, 0
      "\x02\x00\x00\x00\x00\x00\x00\x00"   // dims[0] = 2
      "\x01\x00\x00\x00\x00\x00\x00\x00"   // dims[1] = 1
      "\x01\x00\x00\x00\xfe\xff\xff\xff",  // 1, -2
      8 + 16 + 8);
  EXPECT_EQ(*bytes, expected);
}

TEST(TensorBinary, RoundTripsEveryDtypeAndShape) {
  const json cases[] = {
      {{"dtype", "float32"}, {"shape", {2, 3}}, {"data", {1.5, -2, 0, "NaN", "Infinity", 1e-40}}},
      {{"dtype", "float64"}, {"shape", {1}}, {"data", {-0.1}}},
      {{"dtype", "int64"}, {"shape", {2}}, {"data", {-1, 1LL << 62}}},
      {{"dtype", "int32"}, {"shape", {1, 1, 1}}, {"data", {7}}},
      {{"dtype", "uint8"}, {"shape", {4}}, {"data", {0, 1, 254, 255}}},
      {{"dtype", "bool"}, {"shape", {3}}, {"data", {true, false, true}}},
      {{"dtype", "float32"}, {"shape", json::array()}, {"data", {3.25}}},
      {{"dtype", "float64"}, {"shape", {4, 0}}, {"data", json::array()}},
  };
  for (const json& c : cases) {
    at::Tensor t = json_tensor(c);
    auto bytes = encode_tensor(t);
    ASSERT_TRUE(bytes) << bytes.error().message();
    auto back = decode_tensor(*bytes, "t");
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(to_json(*back), to_json(t)) << c.dump();  // JSON compares NaN as "NaN"
  }
}

TEST(TensorBinary, NonContiguousTensorsAreWrittenInLogicalOrder) {
  at::Tensor t = at::arange(6, at::kLong).reshape({2, 3}).t();  // a transposed view
  auto bytes = encode_tensor(t);
  ASSERT_TRUE(bytes);
  auto back = decode_tensor(*bytes, "t");
  ASSERT_TRUE(back);
  EXPECT_EQ(to_json(*back),
            (json{{"dtype", "int64"}, {"shape", {3, 2}}, {"data", {0, 3, 1, 4, 2, 5}}}));
}

TEST(TensorBinary, MalformedBytesAreRefusedWithTheReason) {
  std::string good =
      *encode_tensor(json_tensor({{"dtype", "bool"}, {"shape", {2}}, {"data", {true, false}}}));
  EXPECT_EQ(decode_error("SYM"),
            "input 'tensors'[0]: 3 bytes is too short for a tensor header (8 bytes)");
  EXPECT_EQ(decode_error("PK\x03\x04xxxxxxxxxxxx"),
            "input 'tensors'[0]: not a Symphony tensor (the first bytes are not \"SYMT\")");

  std::string v2 = good;
  v2[4] = 2;
  EXPECT_EQ(decode_error(v2),
            "input 'tensors'[0]: tensor format version 2; this extension reads version 1");
  std::string bad_dtype = good;
  bad_dtype[5] = 9;
  EXPECT_EQ(decode_error(bad_dtype), "input 'tensors'[0]: unknown dtype code 9");
  EXPECT_EQ(decode_error(good.substr(0, 12)),
            "input 'tensors'[0]: header of 1 dimensions needs 16 bytes, the tensor has 12");
  EXPECT_EQ(decode_error(good + "x"),
            "input 'tensors'[0]: shape [2] of bool needs 2 bytes of data, the tensor has 3");
  std::string not_bool = good;
  not_bool.back() = 2;
  EXPECT_EQ(decode_error(not_bool), "input 'tensors'[0]: bool element 1 is 2, not 0 or 1");

  // dims whose product overflows must not wrap around to the data's size.
  std::string huge("SYMT\x01\x05\x02\x00", 8);
  huge += std::string("\x00\x00\x00\x00\x01\x00\x00\x00", 8);  // 2^32
  huge += std::string("\x00\x00\x00\x00\x01\x00\x00\x00", 8);  // 2^32
  EXPECT_THAT(decode_error(huge), HasSubstr("is too large"));
}

TEST(TorchError, KeepsTheLineThatSaysWhatWentWrong) {
  EXPECT_EQ(
      torch_error_reason("The following operation failed in the TorchScript interpreter.\n"
                         "Traceback of TorchScript (most recent call last):\n"
                         "  File \"code/__torch__.py\", line 10, in forward\n"
                         "    return torch.relu((linear).forward(x, ))\n"
                         "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x4 and 3x2)\n"),
      "mat1 and mat2 shapes cannot be multiplied (1x4 and 3x2)");
  EXPECT_EQ(
      torch_error_reason("scale() Expected a value of type 'int' for argument 'k'.\nPosition: 2\n"),
      "scale() Expected a value of type 'int' for argument 'k'.");
  EXPECT_EQ(torch_error_reason("\n"), "unknown LibTorch error");
}

// --- Models --------------------------------------------------------------------

// Writes the models into the directory given as argv[1].
constexpr const char* kMakeModels = R"PY(
import sys
from typing import Dict, Tuple
import torch

out = sys.argv[1]

class Affine(torch.nn.Module):
    def __init__(self, bias: float):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]))
            self.linear.bias.copy_(torch.tensor([bias, -bias]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))

class TwoOut(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return a + b, a * b

    @torch.jit.export
    def scale(self, a: torch.Tensor, k: int) -> Dict[str, torch.Tensor]:
        return {"scaled": a * k, "positive": a > 0}

    @torch.jit.export
    def many(self, a: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                             torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return a, a, a, a, a, a, a, a, a

    @torch.jit.export
    def half(self, a: torch.Tensor) -> torch.Tensor:
        return a.half()

torch.jit.script(Affine(0.5)).save(out + "/affine.pt")
torch.jit.script(Affine(10.0)).save(out + "/affine_v2.pt")
torch.jit.script(TwoOut()).save(out + "/two_out.pt")
torch.save({"w": torch.ones(2)}, out + "/state_dict.pt")
)PY";

class TorchModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new symphony::testing::TempDir("torchscript-test");
    fs::path script = dir_->path() / "make_models.py";
    write_file(script, kMakeModels);
    // Debian's interpreter on purpose: python3-torch lives there, not in
    // whatever python3 comes first on PATH.
    std::string command = "/usr/bin/python3 " + script.string() + " " + dir_->path().string() +
                          " 2>" + (dir_->path() / "python.err").string();
    int status = std::system(command.c_str());
    if (status != 0) {
      // Python's last line says why ("ModuleNotFoundError: No module named 'torch'").
      std::string err = read_file(dir_->path() / "python.err");
      while (!err.empty() && err.back() == '\n') err.pop_back();
      std::string last =
          err.substr(err.find_last_of('\n') == std::string::npos ? 0 : err.find_last_of('\n') + 1);
      skip_reason_ = "cannot make TorchScript models with /usr/bin/python3 (python3-torch): " +
                     (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "status " + std::to_string(status)) +
                     (last.empty() ? "" : ": " + last);
    }
  }

  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  }

  static const fs::path& models() { return dir_->path(); }

  Result<StepResult> infer(const json& params, std::span<const TensorArtifact> tensors = {}) {
    return run_infer(cache_, params, models(), tensors);
  }

  // Runs torch.infer, expecting success; returns the result.
  StepResult infer_ok(const json& params, std::span<const TensorArtifact> tensors = {}) {
    auto r = infer(params, tensors);
    EXPECT_TRUE(r) << r.error().message();
    return r ? std::move(*r) : StepResult{};
  }

  std::string infer_error(const json& params, std::span<const TensorArtifact> tensors = {}) {
    auto r = infer(params, tensors);
    EXPECT_FALSE(r) << "succeeded: " << params.dump();
    if (r) return {};
    EXPECT_TRUE(is_request_error(r.error())) << r.error().message();
    return r.error().message();
  }

  static json output_json(const StepResult& r) {
    EXPECT_FALSE(r.outputs.empty());
    EXPECT_EQ(r.outputs.at(0).name, "outputs");
    EXPECT_EQ(r.outputs.at(0).media_type, "application/json");
    return json::parse(r.outputs.at(0).data);
  }

  static inline symphony::testing::TempDir* dir_ = nullptr;
  static inline std::string skip_reason_;
  ModuleCache cache_;
};

const json kX = {{"dtype", "float32"}, {"shape", {2, 3}}, {"data", {1, 1, 1, 1, 0, -1}}};

TEST_F(TorchModels, InfoListsMethodsAndParameters) {
  auto r = run_info(cache_, {{"model", "affine.pt"}}, models());
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->outputs.size(), 1u);
  EXPECT_EQ(r->outputs[0].name, "info");
  EXPECT_EQ(r->outputs[0].media_type, "application/json");
  json info = json::parse(r->outputs[0].data);
  EXPECT_EQ(
      info["methods"],
      json::parse(
          R"([{"name": "forward", "schema": "forward(__torch__.Affine self, Tensor x) -> Tensor"}])"));
  EXPECT_EQ(info["parameters"], 8);
  EXPECT_EQ(info["named_parameters"], json::parse(R"([
      {"name": "linear.weight", "shape": [2, 3], "dtype": "float32"},
      {"name": "linear.bias", "shape": [2], "dtype": "float32"}])"));
  EXPECT_EQ(r->summary, json::parse(R"({"methods": 1, "parameters": 8, "model_cached": false})"));

  auto two = run_info(cache_, {{"model", "two_out.pt"}}, models());
  ASSERT_TRUE(two) << two.error().message();
  json two_info = json::parse(two->outputs[0].data);
  std::vector<std::string> names;
  for (const auto& m : two_info["methods"]) names.push_back(m["name"]);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("forward", "scale", "many", "half"));
}

TEST_F(TorchModels, InferWithJsonTensorsGivesExactResults) {
  StepResult r = infer_ok({{"model", "affine.pt"}, {"inputs", {kX}}});
  // relu([1,1,1]·[1,2,3] + 0.5, -(…) - 0.5) = [6.5, 0]; relu([1,0,-1]·… ) = [0, 1.5]
  EXPECT_EQ(output_json(r), json::parse(R"([{"dtype": "float32", "shape": [2, 2],
                                             "data": [6.5, 0.0, 0.0, 1.5], "output": "output0"}])"));
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(r.outputs[1].name, "output0");
  EXPECT_EQ(r.outputs[1].media_type, kTensorMediaType);
  auto decoded = decode_tensor(r.outputs[1].data, "output0");
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(to_json(*decoded)["data"], json::parse("[6.5, 0.0, 0.0, 1.5]"));

  EXPECT_EQ(r.summary["shapes"], json::parse("[[2, 2]]"));
  EXPECT_EQ(r.summary["dtypes"], json::parse(R"(["float32"])"));
  EXPECT_TRUE(r.summary["elapsed_ms"].is_number());
  EXPECT_GE(r.summary["elapsed_ms"].get<double>(), 0.0);
  EXPECT_EQ(r.summary["model_cached"], false);
}

TEST_F(TorchModels, TwoOutputsBecomeTwoEntriesAndTwoBinaryOutputs) {
  json a = {{"dtype", "int64"}, {"data", {1, 2, 3}}};
  json b = {{"dtype", "int64"}, {"data", {4, 5, -6}}};
  StepResult r = infer_ok({{"model", "two_out.pt"}, {"inputs", {a, b}}, {"threads", 2}});
  EXPECT_EQ(output_json(r), json::parse(R"([
      {"dtype": "int64", "shape": [3], "data": [5, 7, -3], "output": "output0"},
      {"dtype": "int64", "shape": [3], "data": [4, 10, -18], "output": "output1"}])"));
  ASSERT_EQ(r.outputs.size(), 3u);
  EXPECT_EQ(r.outputs[1].name, "output0");
  EXPECT_EQ(r.outputs[2].name, "output1");
  EXPECT_EQ(to_json(*decode_tensor(r.outputs[2].data, "output1"))["data"],
            json::parse("[4, 10, -18]"));
  EXPECT_EQ(r.summary["dtypes"], json::parse(R"(["int64", "int64"])"));
}

TEST_F(TorchModels, OtherMethodsTakeScalarsAndNameDictOutputs) {
  json a = {{"dtype", "float64"}, {"data", {-1.5, 2}}};
  StepResult r = infer_ok({{"model", "two_out.pt"}, {"method", "scale"}, {"inputs", {a, 3}}});
  EXPECT_EQ(output_json(r), json::parse(R"([
      {"dtype": "float64", "shape": [2], "data": [-4.5, 6.0], "output": "output0", "name": "scaled"},
      {"dtype": "bool", "shape": [2], "data": [false, true], "output": "output1", "name": "positive"}])"));
}

TEST_F(TorchModels, TensorArtifactsAreInputsToo) {
  std::string x = *encode_tensor(json_tensor(kX));
  TensorArtifact binary{"x@1", kTensorMediaType, x};
  StepResult r = infer_ok({{"model", "affine.pt"}}, std::span(&binary, 1));
  EXPECT_EQ(output_json(r)[0]["data"], json::parse("[6.5, 0.0, 0.0, 1.5]"));

  std::string x_json = kX.dump();
  TensorArtifact as_json{"x@2", "application/json", x_json};
  r = infer_ok({{"model", "affine.pt"}}, std::span(&as_json, 1));
  EXPECT_EQ(output_json(r)[0]["data"], json::parse("[6.5, 0.0, 0.0, 1.5]"));

  EXPECT_EQ(infer_error({{"model", "affine.pt"}, {"inputs", {kX}}}, std::span(&binary, 1)),
            "inputs: give either params.inputs or the 'tensors' input artifacts, not both");
  TensorArtifact text{"notes@3", "text/plain", "1 2 3"};
  EXPECT_EQ(infer_error({{"model", "affine.pt"}}, std::span(&text, 1)),
            "input 'tensors'[0] (notes@3): media type 'text/plain' is not "
            "application/x-symphony-tensor or "
            "application/json");
}

TEST_F(TorchModels, WrongShapeIsOneClearLine) {
  json x = {{"shape", {1, 4}}, {"data", {1, 2, 3, 4}}};
  std::string e = infer_error({{"model", "affine.pt"}, {"inputs", {x}}});
  EXPECT_EQ(e, "model " + (models() / "affine.pt").string() +
                   ": forward: mat1 and mat2 shapes cannot be multiplied (1x4 and 3x2)");
}

TEST_F(TorchModels, WrongDtypeAndArgumentsAreOneClearLine) {
  json x = {{"dtype", "int64"}, {"shape", {1, 3}}, {"data", {1, 2, 3}}};
  std::string e = infer_error({{"model", "affine.pt"}, {"inputs", {x}}});
  EXPECT_THAT(e, HasSubstr(": forward: mat1 and mat2 must have the same dtype"));
  EXPECT_THAT(e, Not(HasSubstr("\n")));

  e = infer_error({{"model", "affine.pt"}, {"inputs", {kX, kX}}});
  EXPECT_THAT(
      e, HasSubstr(
             "Expected at most 2 argument(s) for operator 'forward', but received 3 argument(s)"));
  EXPECT_THAT(e, Not(HasSubstr("\n")));

  e = infer_error({{"model", "two_out.pt"}, {"method", "scale"}, {"inputs", {kX, 1.5}}});
  EXPECT_THAT(e, HasSubstr("scale() Expected a value of type 'int' for argument 'k' but instead "
                           "found type 'float'"));
}

TEST_F(TorchModels, FilesThatAreNotModelsAreNamedAsSuch) {
  write_file(models() / "notes.txt", "not a model\n");
  EXPECT_EQ(infer_error({{"model", "notes.txt"}, {"inputs", {kX}}}),
            "model " + (models() / "notes.txt").string() +
                ": not a TorchScript module: PytorchStreamReader failed reading zip archive: not a "
                "ZIP archive");
  // torch.save writes a zip too, of pickles rather than code.
  EXPECT_THAT(infer_error({{"model", "state_dict.pt"}}),
              HasSubstr("state_dict.pt: not a TorchScript module: "));
  EXPECT_EQ(infer_error({{"model", "."}}), "model: '.' is not a file inside the workspace");
  fs::create_directory(models() / "subdir");
  EXPECT_EQ(infer_error({{"model", "subdir"}}),
            "model " + (models() / "subdir").string() + ": not a regular file");
}

TEST_F(TorchModels, MissingModelsAndBadParamsAreRefused) {
  EXPECT_EQ(infer_error({{"model", "nope.pt"}}),
            "model " + (models() / "nope.pt").string() + ": No such file or directory");
  EXPECT_EQ(infer_error({{"model", "/nonexistent/model.pt"}}),
            "model /nonexistent/model.pt: No such file or directory (an absolute model path must "
            "be granted in the "
            "extension's permissions.filesystem)");
  EXPECT_EQ(infer_error({{"model", "../affine.pt"}}),
            "model: '../affine.pt' is not a file inside the workspace");
  EXPECT_EQ(infer_error(json::object()), "model: missing required parameter");
  EXPECT_EQ(
      infer_error({{"model", "affine.pt"}, {"method", "backward"}, {"inputs", {kX}}}),
      "model " + (models() / "affine.pt").string() + ": no method 'backward' (it has: forward)");
  EXPECT_EQ(infer_error({{"model", "affine.pt"}, {"threads", 0}}),
            "threads: expected an integer from 1 to 1024, got 0");
  EXPECT_EQ(infer_error({{"model", "affine.pt"}, {"device", "tpu"}}),
            "device: 'tpu' is not one of cpu, cuda, cuda:N");
  EXPECT_EQ(infer_error({{"model", "two_out.pt"}, {"method", "many"}, {"inputs", {kX}}}),
            "model " + (models() / "two_out.pt").string() +
                ": many: returned 9 tensors; at most 8 can be outputs (output0 … output7)");

  EXPECT_EQ(infer_error({{"model", "two_out.pt"}, {"method", "half"}, {"inputs", {kX}}}),
            "model " + (models() / "two_out.pt").string() +
                ": half: output 0: dtype Half cannot be carried (supported: float32, float64, "
                "int64, int32, uint8, bool)");

  auto relative = run_info(cache_, {{"model", "affine.pt"}}, fs::path());
  ASSERT_FALSE(relative);
  EXPECT_EQ(relative.error().message(),
            "model: 'affine.pt' is relative to the workspace, but this step has none");
}

TEST_F(TorchModels, CudaIsRefusedClearlyWhenAbsent) {
  auto r = infer({{"model", "affine.pt"}, {"inputs", {kX}}, {"device", "cuda"}});
  if (r) GTEST_SKIP() << "this LibTorch has CUDA and a GPU";
  EXPECT_EQ(r.error().message(),
            "device: 'cuda' requested, but CUDA is not available to this extension (LibTorch built "
            "without CUDA, "
            "or no GPU in the sandbox); use device 'cpu'");
  EXPECT_TRUE(is_request_error(r.error()));
}

TEST_F(TorchModels, CacheServesTheSameFileAndReloadsAChangedOne) {
  fs::path model = models() / "current.pt";
  fs::copy_file(models() / "affine.pt", model, fs::copy_options::overwrite_existing);

  StepResult first = infer_ok({{"model", "current.pt"}, {"inputs", {kX}}});
  EXPECT_EQ(first.summary["model_cached"], false);
  StepResult second = infer_ok({{"model", "current.pt"}, {"inputs", {kX}}});
  EXPECT_EQ(second.summary["model_cached"], true);
  EXPECT_EQ(output_json(second)[0]["data"], json::parse("[6.5, 0.0, 0.0, 1.5]"));
  EXPECT_EQ(cache_.size(), 1u);

  // Same size, new bytes, an mtime a second later: the new model runs.
  auto mtime = fs::last_write_time(model);
  fs::copy_file(models() / "affine_v2.pt", model, fs::copy_options::overwrite_existing);
  fs::last_write_time(model, mtime + std::chrono::seconds(1));
  StepResult third = infer_ok({{"model", "current.pt"}, {"inputs", {kX}}});
  EXPECT_EQ(third.summary["model_cached"], false);
  EXPECT_EQ(output_json(third)[0]["data"], json::parse("[16.0, 0.0, 8.0, 0.0]"));
  EXPECT_EQ(cache_.size(), 1u);

  // A file that stops being a model is an error, not the old module.
  write_file(model, "gone");
  EXPECT_THAT(infer_error({{"model", "current.pt"}, {"inputs", {kX}}}),
              HasSubstr("not a TorchScript module"));
}

TEST_F(TorchModels, CacheKeepsAtMostItsCapacity) {
  ModuleCache small(1);
  auto a = small.load(models() / "affine.pt");
  ASSERT_TRUE(a) << a.error().message();
  auto b = small.load(models() / "two_out.pt");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(small.size(), 1u);
  auto again = small.load(models() / "affine.pt");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->hit, CacheHit::no);  // evicted by two_out.pt
  EXPECT_EQ(small.load(models() / "affine.pt")->hit, CacheHit::yes);
}

// --- The manifest ---------------------------------------------------------------

TEST(TorchscriptManifest, MatchesTheCode) {
  const char* root = std::getenv("SYMPHONY_SOURCE_ROOT");
  ASSERT_NE(root, nullptr) << "SYMPHONY_SOURCE_ROOT is set by meson";
  auto m = stage::load_manifest(fs::path(root) / "extensions" / "torchscript" / "extension.toml");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->id, kExtensionId);
  EXPECT_EQ(stage::to_string(m->version), kExtensionVersion);
  EXPECT_EQ(m->kind, stage::Kind::instrument);

  std::vector<std::string> capabilities;
  for (const auto& c : m->capabilities) capabilities.push_back(c.name);
  EXPECT_THAT(capabilities, ElementsAre(kInferCapability, kInfoCapability));

  const stage::Capability* infer = m->find_capability(kInferCapability);
  ASSERT_NE(infer, nullptr);
  std::vector<std::string> outputs;
  for (const auto& o : infer->outputs) outputs.push_back(o.name + " " + o.media_type);
  std::vector<std::string> expected = {"outputs application/json"};
  for (std::size_t i = 0; i < kMaxTensorOutputs; ++i) {
    expected.push_back("output" + std::to_string(i) + " " + std::string(kTensorMediaType));
  }
  EXPECT_EQ(outputs, expected);

  ASSERT_EQ(m->permissions.filesystem.size(), 1u);
  EXPECT_TRUE(m->permissions.filesystem[0].in_workspace);
  EXPECT_EQ(m->permissions.filesystem[0].path, "");
  EXPECT_EQ(m->permissions.filesystem[0].access, sandbox::Access::read_only);
  EXPECT_FALSE(m->permissions.network);
  EXPECT_EQ(m->limits.memory, sandbox::Bytes{2ULL << 30});
  EXPECT_EQ(m->limits.pids, 64u);
  EXPECT_EQ(m->limits.timeout, std::chrono::minutes(10));
}

}  // namespace
}  // namespace symphony::extensions::torchscript
