// MPI's collectives as plain C functions: MPI_COMM_WORLD, MPI_FLOAT and MPI_SUM are macros over
// implementation-specific globals that Swift cannot import.
#ifndef FUSEKIT_MPI_H
#define FUSEKIT_MPI_H

#include <stddef.h>

/// Initialises MPI (funneled threads: only the main thread calls MPI); returns 0 or an MPI error.
int fk_mpi_init(void);
/// Whether MPI is initialised.
int fk_mpi_is_initialized(void);
/// This process's rank and the number of ranks in MPI_COMM_WORLD.
int fk_mpi_rank(void);
int fk_mpi_size(void);
/// In-place sums over all ranks (any count; split into MPI-sized messages).
int fk_mpi_allreduce_sum_float(float *values, size_t count);
int fk_mpi_allreduce_sum_double(double *values, size_t count);
/// In-place maximum over all ranks.
int fk_mpi_allreduce_max_double(double *values, size_t count);
int fk_mpi_barrier(void);
void fk_mpi_finalize(void);
/// Stops every rank with `code`.
void fk_mpi_abort(int code);

#endif
