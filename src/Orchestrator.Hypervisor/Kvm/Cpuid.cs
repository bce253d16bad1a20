// Per-vCPU CPUID from KVM_GET_SUPPORTED_CPUID: what the host offers, with this vCPU's APIC id and a flat topology
// (one thread per core, all cores in one package) instead of the host's, and the hypervisor bit set so Linux uses
// kvm-clock and paravirtual features without probing.
namespace Orchestrator.Hypervisor.Kvm;

internal static class Cpuid
{
    public const uint HypervisorBit = 1u << 31; // leaf 1 ECX
    public const uint HttBit = 1u << 28;        // leaf 1 EDX: "more than one logical processor per package" is valid

    private const uint LevelTypeSmt = 1;
    private const uint LevelTypeCore = 2;

    /// <summary>KVM_CPUID_FLAG_SIGNIFCANT_INDEX (asm/kvm.h, spelled so there): the entry answers one subleaf only.</summary>
    public const uint SignificantIndexFlag = 1;

    public static KvmCpuidEntry2[] ForVcpu(IReadOnlyList<KvmCpuidEntry2> supported, int index, int count)
    {
        var apicId = (uint)index;
        var coreBits = (uint)Math.Ceiling(Math.Log2(Math.Max(count, 1)));
        var entries = new List<KvmCpuidEntry2>(supported.Count + 4);
        foreach (var original in supported)
        {
            var entry = original;
            switch (entry.function)
            {
                case 1:
                    // EBX: [31:24] initial APIC id, [23:16] logical processors per package, [15:8] CLFLUSH line / 8.
                    entry.ebx = (apicId << 24) | ((uint)Math.Min(count, 255) << 16) | (8u << 8) | (entry.ebx & 0xff);
                    entry.ecx |= HypervisorBit;
                    entry.edx = count > 1 ? entry.edx | HttBit : entry.edx & ~HttBit;
                    break;
                case 0xb or 0x1f:
                    // Written whole below, at the place of the leaf's first subleaf: since Linux 6.1 KVM reports only
                    // subleaf 0, zeroed, so rewriting what it returns would leave the guest without a core level
                    // (each vCPU its own package, against leaf 1). Firecracker fixed the same (PR 3430).
                    if (entry.index == 0 || !supported.Any(e => e.function == entry.function && e.index == 0))
                    {
                        if (!entries.Any(e => e.function == entry.function))
                        {
                            entries.AddRange(ExtendedTopology(entry.function, apicId, coreBits, count));
                        }
                    }

                    continue;
            }

            entries.Add(entry);
        }

        return [.. entries];
    }

    /// <summary>Extended topology: level 0 SMT (1 thread per core), level 1 core (count cores), level 2 invalid (the end).</summary>
    private static IEnumerable<KvmCpuidEntry2> ExtendedTopology(uint function, uint apicId, uint coreBits, int count)
    {
        yield return Subleaf(0, eax: 0, ebx: 1, levelType: LevelTypeSmt);
        yield return Subleaf(1, eax: coreBits, ebx: (uint)count, levelType: LevelTypeCore);
        yield return Subleaf(2, eax: 0, ebx: 0, levelType: 0);

        KvmCpuidEntry2 Subleaf(uint index, uint eax, uint ebx, uint levelType) => new()
        {
            function = function,
            index = index,
            flags = SignificantIndexFlag,
            eax = eax,
            ebx = ebx,
            ecx = (levelType << 8) | index,
            edx = apicId,
        };
    }
}
