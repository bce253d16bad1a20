// Pins threads (a VM's vCPU threads) to CPUs with sched_setaffinity.
using System.Runtime.InteropServices;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Hypervisor.Cgroups;

public static partial class ThreadAffinity
{
    // cpu_set_t sized for CpuSet.MaxCpu + 1 CPUs; the kernel ignores bits past nr_cpu_ids on set and
    // zero-fills past them on get.
    private const int MaskWords = (CpuSet.MaxCpu + 1) / 64;

    /// <summary>
    /// Restricts one thread (a tid; the pid for a single-threaded process) to the given CPUs. The kernel
    /// further intersects the set with the thread's cpuset; it refuses (EINVAL) a set with no usable CPU.
    /// </summary>
    public static void Set(int threadId, IReadOnlyList<int> cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threadId);
        if (cpus.Count == 0)
        {
            throw new ArgumentException("an affinity needs at least one CPU", nameof(cpus));
        }

        Span<ulong> mask = stackalloc ulong[MaskWords];
        foreach (var cpu in cpus)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(cpu, nameof(cpus));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(cpu, CpuSet.MaxCpu, nameof(cpus));
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }

        int result;
        unsafe
        {
            // Safe: the pointer is pinned by fixed and the size passed is exactly the span's size in bytes.
            fixed (ulong* bits = mask)
            {
                result = sched_setaffinity(threadId, (nuint)(MaskWords * sizeof(ulong)), bits);
            }
        }

        if (result != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new HypervisorException(
                $"cannot pin thread {threadId} to CPUs {CpuSet.Format(cpus)}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
    }

    /// <summary>The CPUs a thread may run on, sorted.</summary>
    public static IReadOnlyList<int> Get(int threadId)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threadId);
        Span<ulong> mask = stackalloc ulong[MaskWords];
        int result;
        unsafe
        {
            // Safe: as in Set; glibc writes at most the size given.
            fixed (ulong* bits = mask)
            {
                result = sched_getaffinity(threadId, (nuint)(MaskWords * sizeof(ulong)), bits);
            }
        }

        if (result != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new HypervisorException(
                $"cannot read the CPU affinity of thread {threadId}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }

        var cpus = new List<int>();
        for (var word = 0; word < MaskWords; word++)
        {
            for (var bit = 0; bit < 64 && mask[word] >> bit != 0; bit++)
            {
                if ((mask[word] & (1UL << bit)) != 0)
                {
                    cpus.Add(word * 64 + bit);
                }
            }
        }

        return cpus;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int sched_setaffinity(int pid, nuint cpusetsize, ulong* mask);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int sched_getaffinity(int pid, nuint cpusetsize, ulong* mask);
}
