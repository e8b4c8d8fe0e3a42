/* CPU-bound user-mode work whose result can be checked independently:
 * an LCG stepped one by one, verified against its O(log n) jump-ahead,
 * and a bit sieve whose prime count is a known constant. */
#include "user.h"

uint64_t lcg_run(uint64_t x, uint64_t steps)
{
	while (steps--)
		x = x * LCG_A + LCG_C;
	return x;
}

/* x_n = A^n x + C (A^n - 1) / (A - 1), by square-and-multiply on the
 * affine map (mult, plus). */
uint64_t lcg_jump(uint64_t x, uint64_t steps)
{
	uint64_t acc_m = 1, acc_p = 0, m = LCG_A, p = LCG_C;

	while (steps) {
		if (steps & 1) {
			acc_m *= m;
			acc_p = acc_p * m + p;
		}
		p = (m + 1) * p;
		m *= m;
		steps >>= 1;
	}
	return acc_m * x + acc_p;
}

/* Count primes below limit; bits must hold limit bits. */
unsigned sieve_count(uint8_t *bits, unsigned limit)
{
	unsigned count = 0;

	memset(bits, 0, (limit + 7) / 8);
	for (unsigned i = 2; i < limit; i++) {
		if (bits[i / 8] & (1u << (i % 8)))
			continue;
		count++;
		for (uint64_t j = (uint64_t)i * i; j < limit; j += i)
			bits[j / 8] |= (uint8_t)(1u << (j % 8));
	}
	return count;
}

/* Shell sort: no recursion, no allocation, fine for a few thousand. */
void sort_i64(int64_t *a, unsigned n)
{
	for (unsigned gap = n / 2; gap; gap /= 2)
		for (unsigned i = gap; i < n; i++) {
			int64_t v = a[i];
			unsigned j = i;

			for (; j >= gap && a[j - gap] > v; j -= gap)
				a[j] = a[j - gap];
			a[j] = v;
		}
}
