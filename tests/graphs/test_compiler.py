"""The clang 22 front end (ziglang): languages, POJ-104 fix-ups, limits and the cache."""

import pytest

from codeprop.graphs import compiler, llvm_ir, programl


@pytest.fixture(scope="module")
def cc(tmp_path_factory):
    return compiler.Compiler(cache_dir=tmp_path_factory.mktemp("ir"))


def _compile_poj(cc, source):
    result = cc.compile_poj104(source)
    assert result.ok, result.errors
    llvm_ir.validate(result.ir)
    return result


def test_void_main_and_c_library_use_the_c_prelude(cc):
    result = _compile_poj(
        cc, 'void main()\n{\n  char s[100];\n  gets(s);\n  printf("%s\\n", s);\n}\n'
    )
    assert result.attempt == "c++98 (C headers)"
    assert "define noundef i32 @main()" in result.ir  # void main -> int main.
    assert "ModuleID = 'source.cpp'" in result.ir  # No temporary paths: cached IR is stable.
    names = [f.name for f in llvm_ir.read(result.ir).functions]
    assert "@gets" in names and "@printf" in names


def test_streams_use_the_cpp_prelude(cc):
    result = _compile_poj(cc, "int main() { int n; cin >> n; cout << n * 2 << endl; }\n")
    assert result.attempt == "c++98"
    graph = programl.from_ir(result.ir)
    assert graph.node_counts()["instruction"] > 10


def test_globals_clashing_with_std_names(cc):
    source = (
        "int max = 0;\n"
        "int main() { int a; cin >> a; if (a > max) max = a; cout << max; return 0; }\n"
    )
    result = _compile_poj(cc, source)
    assert result.attempt == "c++98 without using namespace std"
    assert "reference to 'max' is ambiguous" in result.errors[0][1]


def test_k_and_r_c_falls_back_to_gnu89(cc):
    source = 'f(x)\nint x;\n{ return x * 2; }\nmain()\n{\n  printf("%d", f(21));\n}\n'
    result = _compile_poj(cc, source)
    assert result.attempt == "gnu89"
    assert [name for name, _ in result.errors] == ["c++98 (C headers)", "c++98"]


def test_stripped_defines_are_guessed_and_named(cc):
    source = (
        "struct student { int num; };\n"
        "int main() { struct student *p = (struct student *)malloc(LEN); int a[N];\n"
        '  a[0] = p->num = 1; printf("%d %f", a[0], PI); return 0; }\n'
    )
    result = _compile_poj(cc, source)
    assert result.attempt == "c++98 (C headers), guessed macros LEN, N, PI"
    assert "@malloc(i64 noundef 1000)" in result.ir and "[1000 x i32]" in result.ir
    assert "double noundef 0x400921FB54442D11" in result.ir
    assert (
        compiler.guessed_macros("int f() { return SQ(3); }", [("x", "undeclared identifier 'SQ'")])
        == {}
    )


def test_every_failure_is_recorded(cc):
    result = cc.compile_poj104("int main( {\n")
    assert not result.ok and result.reason == "compile error"
    assert [name for name, _ in result.errors] == ["c++98 (C headers)", "c++98", "gnu89"]
    assert all("error" in message for _, message in result.errors)


def test_opencl_kernel_with_the_prelude(cc):
    kernel = (
        "__kernel void scale(__global float4 *x, const float a, __local float *tmp) {\n"
        "  int i = get_global_id(0);\n"
        "  tmp[get_local_id(0)] = a;\n"
        "  barrier(CLK_LOCAL_MEM_FENCE);\n"
        "  x[i] = x[i] * (float4)(tmp[0]) + (float4)(FLT_EPSILON);\n"
        "}\n"
    )
    result = cc.compile_source(kernel, "opencl")
    assert result.ok, result.errors
    assert "spir_kernel" in result.ir or "@scale" in result.ir
    graph = programl.from_ir(result.ir)
    texts = set(graph.node_text)
    assert {"<4 x float>", "call", "store"} <= texts


def test_c_and_cpp_defaults(cc):
    c = cc.compile_source("int add(int a, int b) { return a + b; }\n", "c")
    cpp = cc.compile_source(
        "template <class T> T twice(T x) { return 2 * x; }\nint f() { return twice(21); }\n", "cpp"
    )
    assert c.ok and cpp.ok
    assert "@add" in c.ir and "_Z5twiceIiET_S0_" in cpp.ir


def test_cache_returns_the_same_ir(cc):
    source = "int main() { return 42; }\n"
    first = cc.compile_source(source, "c")
    second = cc.compile_source(source, "c")
    assert not first.cached and second.cached and second.ir == first.ir


def test_limits(tmp_path):
    source = "int main() { int n; cin >> n; cout << n << endl; return 0; }\n"
    slow = compiler.Compiler(cache_dir=tmp_path / "a", timeout_s=0.01)
    result = slow.compile(compiler.poj104_attempts(source))
    assert result.reason == "timeout" and len(result.errors) == 1  # Not retried.
    assert not slow.compile(compiler.poj104_attempts(source)).cached  # Timeouts not cached.
    small = compiler.Compiler(cache_dir=tmp_path / "b", memory_mb=100)
    result = small.compile(compiler.poj104_attempts(source))
    assert result.reason == "memory limit (100 MiB) or crash"


def test_compile_many_keeps_order(cc):
    sources = [f"int f{i}() {{ return {i}; }}\n" for i in range(6)] + ["int g( {\n"]
    results = cc.compile_many([compiler.default_attempts(s, "c") for s in sources], workers=2)
    assert [r.ok for r in results] == [True] * 6 + [False]
    assert all(f"@f{i}()" in r.ir for i, r in enumerate(results[:6]))
