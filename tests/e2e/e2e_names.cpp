/* A function with a very long C++ name (a template instantiated on a deeply
 * nested type: its demangled name is thousands of characters) allocates
 * 31337 bytes and keeps them. The test runs it with a hostile command line
 * (control characters, invalid UTF-8, quotes, backslashes): the program
 * ignores its arguments. */
#include <cstdlib>
#include <cstring>

template <typename A, typename B> struct Pair {};
template <int N> struct Nest {
    typedef Pair<typename Nest<N - 1>::type, typename Nest<N - 1>::type *> type;
};
template <> struct Nest<0> {
    typedef Pair<int, char> type;
};

namespace mlmem_e2e_names {
template <typename T> __attribute__((noinline)) void *allocate_with_a_very_long_name(int n)
{
    void *p = std::malloc((size_t)n);
    std::memset(p, 1, (size_t)n);
    return p;
}
} // namespace mlmem_e2e_names

int main()
{
    void *p = mlmem_e2e_names::allocate_with_a_very_long_name<Nest<7>::type>(31337);
    return p ? 0 : 1;
}
