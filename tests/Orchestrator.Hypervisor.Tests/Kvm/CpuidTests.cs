using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class CpuidTests
{
    [Fact]
    public void Each_vcpu_gets_its_apic_id_the_hypervisor_bit_and_a_flat_topology()
    {
        KvmCpuidEntry2[] host =
        [
            new() { function = 0, eax = 0x1f, ebx = 0x756e6547 },
            new() { function = 1, eax = 0x906ea, ebx = 0x0c100800, ecx = 0x7ffafbff, edx = 0xbfebfbff },
            new() { function = 0xb, index = 0, eax = 1, ebx = 2, ecx = 0x100, edx = 17 },
            new() { function = 0xb, index = 1, eax = 4, ebx = 16, ecx = 0x201, edx = 17 },
            new() { function = 0xb, index = 2, eax = 0, ebx = 0, ecx = 2, edx = 17 },
        ];

        var vcpu3 = Cpuid.ForVcpu(host, 3, 4);

        Assert.Equal(host.Length, vcpu3.Length);
        Assert.Equal(host[0].ebx, vcpu3[0].ebx); // untouched leaves pass through
        Assert.Equal(3u, vcpu3[1].ebx >> 24);    // initial APIC id
        Assert.Equal(4u, (vcpu3[1].ebx >> 16) & 0xff);
        Assert.NotEqual(0u, vcpu3[1].ecx & Cpuid.HypervisorBit);
        Assert.NotEqual(0u, vcpu3[1].edx & Cpuid.HttBit);
        Assert.All(vcpu3.Where(e => e.function == 0xb), e => Assert.Equal(3u, e.edx));
        Assert.Equal((0u, 1u, 0x100u), (vcpu3[2].eax, vcpu3[2].ebx, vcpu3[2].ecx));
        Assert.Equal((2u, 4u, 0x201u), (vcpu3[3].eax, vcpu3[3].ebx, vcpu3[3].ecx));
        Assert.Equal((0u, 0u, 2u), (vcpu3[4].eax, vcpu3[4].ebx, vcpu3[4].ecx));

        var single = Cpuid.ForVcpu(host, 0, 1);
        Assert.Equal(0u, single[1].ebx >> 24);
        Assert.Equal(0u, single[1].edx & Cpuid.HttBit);
    }

    [Fact]
    public void The_core_level_is_written_even_when_kvm_reports_only_a_zeroed_subleaf_0()
    {
        // What KVM_GET_SUPPORTED_CPUID returns for 0xB and 0x1F since Linux 6.1.
        KvmCpuidEntry2[] host =
        [
            new() { function = 0, eax = 0x1f },
            new() { function = 1, ebx = 0x0c100800 },
            new() { function = 0xb, index = 0, flags = Cpuid.SignificantIndexFlag },
            new() { function = 0x1f, index = 0, flags = Cpuid.SignificantIndexFlag },
            new() { function = 0x80000000, eax = 0x80000008 },
        ];

        var vcpu = Cpuid.ForVcpu(host, 5, 6);

        Assert.Equal([0u, 1u, 0xbu, 0xbu, 0xbu, 0x1fu, 0x1fu, 0x1fu, 0x80000000u], vcpu.Select(e => e.function));
        foreach (var leaf in new[] { 0xbu, 0x1fu })
        {
            var levels = vcpu.Where(e => e.function == leaf).ToArray();
            Assert.Equal([0u, 1u, 2u], levels.Select(e => e.index));
            Assert.All(levels, e => Assert.Equal((Cpuid.SignificantIndexFlag, 5u), (e.flags, e.edx)));
            Assert.Equal((0u, 1u, 0x100u), (levels[0].eax, levels[0].ebx, levels[0].ecx)); // SMT: 1 thread per core
            Assert.Equal((3u, 6u, 0x201u), (levels[1].eax, levels[1].ebx, levels[1].ecx)); // core: 6 of them, 3 bits
            Assert.Equal(0u, (levels[2].ecx >> 8) & 0xff);                                  // the end
        }
    }
}
