#include "FuseKitMPI.h"
#include <limits.h>
#include <mpi.h>

int fk_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}

int fk_mpi_is_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

int fk_mpi_rank(void) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int fk_mpi_size(void) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

static int allreduce(void *values, size_t count, size_t element, MPI_Datatype type, MPI_Op op) {
    char *base = values;
    while (count > 0) {
        int n = count > (size_t)INT_MAX ? INT_MAX : (int)count;
        int error = MPI_Allreduce(MPI_IN_PLACE, base, n, type, op, MPI_COMM_WORLD);
        if (error != MPI_SUCCESS) return error;
        base += (size_t)n * element;
        count -= (size_t)n;
    }
    return MPI_SUCCESS;
}

int fk_mpi_allreduce_sum_float(float *values, size_t count) { return allreduce(values, count, sizeof(float), MPI_FLOAT, MPI_SUM); }
int fk_mpi_allreduce_sum_double(double *values, size_t count) { return allreduce(values, count, sizeof(double), MPI_DOUBLE, MPI_SUM); }
int fk_mpi_allreduce_max_double(double *values, size_t count) { return allreduce(values, count, sizeof(double), MPI_DOUBLE, MPI_MAX); }

int fk_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

void fk_mpi_finalize(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && fk_mpi_is_initialized()) MPI_Finalize();
}

void fk_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
