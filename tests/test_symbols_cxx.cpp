// test_symbols_cxx.cpp - a C++ function with a namespaced, mangled name for
// test_symbols.c to resolve: mlmem_test::Widget::grow(int).
#include <cstdint>

namespace mlmem_test {

struct Widget {
    static int grow(int by);
};

__attribute__((noinline)) int Widget::grow(int by)
{
    return by * 2 + 1;
}

} // namespace mlmem_test

// The run-time address of mlmem_test::Widget::grow, for a C caller.
extern "C" uint64_t symtest_widget_grow_address(void)
{
    return (uint64_t)(uintptr_t)&mlmem_test::Widget::grow;
}
