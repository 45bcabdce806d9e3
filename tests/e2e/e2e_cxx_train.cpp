// e2e_cxx_train.cpp - a tiny C++ training loop written the way a C++
// programmer would, knowing its own ground truth, for measuring mlmem's
// attribution on a program it was not tuned on
// (bench/attribution_accuracy_torch.py, ctest attribution_cxx).
//
// An MLP (784 -> hidden -> hidden -> 10, ReLU, softmax cross-entropy) on
// Fashion-MNIST with Adam. Every tensor is a std::vector<float>: each
// parameter is a struct Param { w, g, m, v } (value, gradient, Adam's two
// moments), allocated once per tensor. Each step the forward pass allocates
// the activations of every layer (kept for the backward pass), the backward
// pass allocates a delta per layer (freed as soon as the layer below has
// used it). The dataset is read with std::ifstream through a 64 KiB chunk
// buffer and inflated with zlib into a byte buffer, converted to a resident
// std::vector<float>, and batches point into it.
//
// The program counts the bytes of every vector it allocates, per category,
// and --truth FILE writes the categories at its own peak (the instant its
// counted bytes were highest) as JSON, plus each category's maximum.
//
// Usage: e2e_cxx_train [--data DIR] [--samples N] [--steps N] [--hidden H]
//                      [--batch B] [--truth FILE]
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

enum Cat { WEIGHTS, GRADIENTS, OPTIMIZER_STATE, ACTIVATIONS, DATA, TEMPORARIES, NCAT };
const char *const cat_names[NCAT] = {"weights",     "gradients", "optimizer_state",
                                     "activations", "data",      "temporaries"};

// What the program knows it holds, per category, and the split at its peak.
struct Ledger {
    size_t live[NCAT] = {};
    size_t at_peak[NCAT] = {};
    size_t max[NCAT] = {};
    size_t peak = 0;
    void add(Cat c, size_t bytes)
    {
        live[c] += bytes;
        max[c] = std::max(max[c], live[c]);
        size_t total = 0;
        for (size_t v : live)
            total += v;
        if (total > peak) {
            peak = total;
            std::copy(live, live + NCAT, at_peak);
        }
    }
    void sub(Cat c, size_t bytes) { live[c] -= bytes; }
};
Ledger ledger;

// A vector of n floats whose bytes the ledger counts.
std::vector<float> make(size_t n, Cat c)
{
    std::vector<float> v(n);
    ledger.add(c, n * sizeof(float));
    return v;
}
void drop(std::vector<float> &v, Cat c)
{
    ledger.sub(c, v.capacity() * sizeof(float));
    std::vector<float>().swap(v);
}

struct Param {
    std::vector<float> w, g, m, v;
    explicit Param(size_t n)
        : w(make(n, WEIGHTS)), g(make(n, GRADIENTS)), m(make(n, OPTIMIZER_STATE)),
          v(make(n, OPTIMIZER_STATE))
    {
    }
};

struct Linear {
    size_t in, out;
    Param W, b;
    Linear(size_t i, size_t o, std::mt19937 &rng) : in(i), out(o), W(i * o), b(o)
    {
        std::normal_distribution<float> nd(0.0f, std::sqrt(2.0f / (float)i));
        for (float &x : W.w)
            x = nd(rng);
    }
};

// Reads the first 'want' bytes of a gzip file: std::ifstream fills a 64 KiB
// chunk buffer, zlib inflates it into the result.
std::vector<uint8_t> read_gz(const std::string &path, size_t want)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(path + ": cannot open");
    std::vector<uint8_t> out(want);
    ledger.add(DATA, want);
    std::vector<char> chunk(64 * 1024);
    ledger.add(DATA, chunk.size());
    z_stream zs;
    std::memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        throw std::runtime_error("inflateInit2");
    zs.next_out = out.data();
    zs.avail_out = (uInt)want;
    while (zs.avail_out > 0) {
        if (zs.avail_in == 0) {
            in.read(chunk.data(), (std::streamsize)chunk.size());
            if (in.gcount() <= 0)
                throw std::runtime_error(path + ": short file");
            zs.next_in = reinterpret_cast<Bytef *>(chunk.data());
            zs.avail_in = (uInt)in.gcount();
        }
        int rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK)
            throw std::runtime_error(path + ": inflate failed");
    }
    inflateEnd(&zs);
    if (zs.avail_out)
        throw std::runtime_error(path + ": short file");
    ledger.sub(DATA, chunk.size());
    return out;
}

void forward(const Linear &l, const float *x, size_t batch, float *z)
{
    for (size_t r = 0; r < batch; r++) {
        const float *xr = x + r * l.in;
        float *zr = z + r * l.out;
        for (size_t o = 0; o < l.out; o++)
            zr[o] = l.b.w[o];
        for (size_t i = 0; i < l.in; i++) {
            float xi = xr[i];
            if (xi == 0.0f)
                continue;
            const float *wr = &l.W.w[i * l.out];
            for (size_t o = 0; o < l.out; o++)
                zr[o] += xi * wr[o];
        }
    }
}

// dz (batch x out) -> gradients of W, b; dx (batch x in) if wanted.
void backward(Linear &l, const float *x, const float *dz, size_t batch, float *dx)
{
    for (size_t r = 0; r < batch; r++) {
        const float *xr = x + r * l.in;
        const float *dr = dz + r * l.out;
        for (size_t o = 0; o < l.out; o++)
            l.b.g[o] += dr[o];
        for (size_t i = 0; i < l.in; i++) {
            float *gr = &l.W.g[i * l.out];
            float xi = xr[i];
            float acc = 0.0f;
            const float *wr = &l.W.w[i * l.out];
            for (size_t o = 0; o < l.out; o++) {
                gr[o] += xi * dr[o];
                acc += wr[o] * dr[o];
            }
            if (dx)
                dx[r * l.in + i] = acc;
        }
    }
}

void adam(Param &p, float lr, int t)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - std::pow(b1, (float)t), c2 = 1.0f - std::pow(b2, (float)t);
    for (size_t i = 0; i < p.w.size(); i++) {
        p.m[i] = b1 * p.m[i] + (1 - b1) * p.g[i];
        p.v[i] = b2 * p.v[i] + (1 - b2) * p.g[i] * p.g[i];
        p.w[i] -= lr * (p.m[i] / c1) / (std::sqrt(p.v[i] / c2) + eps);
    }
}

} // namespace

int main(int argc, char **argv)
{
    std::string dir = "/usr/share/datasets/fashion-mnist", truth;
    size_t samples = 2000, steps = 40, hidden = 256, batch = 64;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--data")
            dir = next();
        else if (a == "--samples")
            samples = std::stoul(next());
        else if (a == "--steps")
            steps = std::stoul(next());
        else if (a == "--hidden")
            hidden = std::stoul(next());
        else if (a == "--batch")
            batch = std::stoul(next());
        else if (a == "--truth")
            truth = next();
        else {
            std::fprintf(stderr,
                         "usage: e2e_cxx_train [--data DIR] [--samples N] [--steps N] "
                         "[--hidden H] [--batch B] [--truth FILE]\n");
            return 2;
        }
    }
    if (batch == 0 || samples < batch) {
        std::fprintf(stderr, "e2e_cxx_train: need --samples >= --batch > 0\n");
        return 2;
    }

    std::vector<float> X, Y;
    try {
        // The dataset: bytes from the file, then resident floats.
        std::vector<uint8_t> img = read_gz(dir + "/train-images-idx3-ubyte.gz", 16 + samples * 784);
        std::vector<uint8_t> lab = read_gz(dir + "/train-labels-idx1-ubyte.gz", 8 + samples);
        X = make(samples * 784, DATA);
        Y = make(samples, DATA);
        for (size_t i = 0; i < samples * 784; i++)
            X[i] = img[16 + i] / 255.0f;
        for (size_t i = 0; i < samples; i++)
            Y[i] = lab[8 + i];
        ledger.sub(DATA, img.size() + lab.size());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "e2e_cxx_train: %s\n", e.what());
        return 1;
    }

    std::mt19937 rng(1);
    std::vector<Linear> layers;
    layers.reserve(3);
    layers.emplace_back(784, hidden, rng);
    layers.emplace_back(hidden, hidden, rng);
    layers.emplace_back(hidden, 10, rng);
    const size_t L = layers.size();

    double first_loss = 0, last_loss = 0;
    for (size_t step = 0; step < steps; step++) {
        size_t start = (step * batch) % (samples - samples % batch);
        const float *x = &X[start * 784];
        for (Linear &l : layers) {
            std::fill(l.W.g.begin(), l.W.g.end(), 0.0f);
            std::fill(l.b.g.begin(), l.b.g.end(), 0.0f);
        }
        // Forward: z and relu(z) of every layer stay for the backward pass.
        std::vector<std::vector<float>> z, a;
        z.reserve(L);
        a.reserve(L);
        const float *in = x;
        for (size_t k = 0; k < L; k++) {
            z.push_back(make(batch * layers[k].out, ACTIVATIONS));
            forward(layers[k], in, batch, z[k].data());
            a.push_back(make(batch * layers[k].out, ACTIVATIONS));
            for (size_t i = 0; i < z[k].size(); i++)
                a[k][i] = k + 1 < L ? std::max(z[k][i], 0.0f) : z[k][i];
            in = a[k].data();
        }
        // Softmax cross-entropy; the delta of the last layer.
        std::vector<float> dz = make(batch * 10, TEMPORARIES);
        double loss = 0;
        for (size_t r = 0; r < batch; r++) {
            const float *o = &a[L - 1][r * 10];
            float mx = *std::max_element(o, o + 10), sum = 0;
            for (int c = 0; c < 10; c++)
                sum += std::exp(o[c] - mx);
            int y = (int)Y[start + r];
            loss += -(o[y] - mx - std::log(sum));
            for (int c = 0; c < 10; c++)
                dz[r * 10 + c] = (std::exp(o[c] - mx) / sum - (c == y)) / (float)batch;
        }
        loss /= (double)batch;
        if (step == 0)
            first_loss = loss;
        last_loss = loss;
        // Backward, last layer first; each delta lives until the layer below used it.
        for (size_t k = L; k-- > 0;) {
            const float *below = k ? a[k - 1].data() : x;
            std::vector<float> dx;
            if (k)
                dx = make(batch * layers[k].in, TEMPORARIES);
            backward(layers[k], below, dz.data(), batch, k ? dx.data() : nullptr);
            drop(dz, TEMPORARIES);
            if (k) {
                for (size_t i = 0; i < dx.size(); i++)
                    if (z[k - 1][i] <= 0.0f)
                        dx[i] = 0.0f;
                dz.swap(dx);
            }
            drop(z[k], ACTIVATIONS);
            drop(a[k], ACTIVATIONS);
        }
        for (Linear &l : layers) {
            adam(l.W, 1e-3f, (int)step + 1);
            adam(l.b, 1e-3f, (int)step + 1);
        }
    }

    std::printf("steps %zu loss %.3f -> %.3f; peak %zu counted bytes\n", steps, first_loss,
                last_loss, ledger.peak);
    if (!truth.empty()) {
        FILE *f = std::fopen(truth.c_str(), "w");
        if (!f) {
            std::perror(truth.c_str());
            return 1;
        }
        std::fprintf(f, "{\n \"peak\": {\"total\": %zu, \"bytes\": {", ledger.peak);
        for (int c = 0; c < NCAT; c++)
            std::fprintf(f, "%s\"%s\": %zu", c ? ", " : "", cat_names[c], ledger.at_peak[c]);
        std::fprintf(f, ", \"other\": 0}},\n \"max_per_category\": {");
        for (int c = 0; c < NCAT; c++)
            std::fprintf(f, "%s\"%s\": %zu", c ? ", " : "", cat_names[c], ledger.max[c]);
        std::fprintf(f, "},\n \"steps\": %zu, \"hidden\": %zu, \"batch\": %zu, \"samples\": %zu\n}\n",
                     steps, hidden, batch, samples);
        std::fclose(f);
    }
    return 0;
}
