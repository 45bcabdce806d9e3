// C++ new/delete: new char[10000], new double[100] (800 bytes), a
// std::vector<int> of 1000 (4000 bytes), all released.
#include <memory>
#include <vector>

int main()
{
    char *a = new char[10000];
    a[0] = 1;
    double *d = new double[100];
    d[0] = 1.0;
    {
        std::vector<int> v(1000);
        v[999] = 1;
    }
    delete[] d;
    delete[] a;
    return 0;
}
