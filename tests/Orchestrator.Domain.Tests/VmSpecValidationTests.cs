using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class VmSpecValidationTests
{
    private static readonly IReadOnlySet<string> Images = new HashSet<string> { "demo" };

    private static IReadOnlyList<FieldError> Validate(VmSpec spec) => VmSpecValidator.Validate(spec, VmSpecLimits.Default, Images);

    [Fact]
    public void A_sensible_spec_is_valid() =>
        Assert.Empty(Validate(new VmSpec("web1", 1, 256, "demo")));

    [Theory]
    [InlineData("kvm")]
    [InlineData("qemu")]
    public void A_known_driver_is_valid(string driver) =>
        Assert.Empty(Validate(new VmSpec("web1", 1, 256, "demo", Driver: driver)));

    [Theory]
    [InlineData("")]
    [InlineData("KVM")]
    [InlineData("simulated")]
    [InlineData("kvm --enable-kvm")]
    public void An_unknown_driver_is_named_with_the_known_ones(string driver)
    {
        var error = Assert.Single(Validate(new VmSpec("web1", 1, 256, "demo", Driver: driver)));
        Assert.Equal("driver", error.Field);
        Assert.EndsWith("known drivers: kvm, qemu", error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(10_000)]
    public void Vcpus_out_of_range_are_named(int vcpus)
    {
        var error = Assert.Single(Validate(new VmSpec("web1", vcpus, 256, "demo")));
        Assert.Equal("vcpus", error.Field);
    }

    [Theory]
    [InlineData(-256)]
    [InlineData(0)]
    [InlineData(2_000_000)]
    public void Memory_out_of_range_is_named(int memory)
    {
        var error = Assert.Single(Validate(new VmSpec("web1", 1, memory, "demo")));
        Assert.Equal("memoryMiB", error.Field);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("../etc")]
    [InlineData("Web1")]
    [InlineData("web 1")]
    [InlineData("-web")]
    [InlineData("web-")]
    [InlineData("1web")]
    [InlineData("web;rm -rf")]
    [InlineData("web1,debug-threads=on")]
    public void Names_that_are_not_dns_labels_are_refused(string name)
    {
        var error = Assert.Single(Validate(new VmSpec(name, 1, 256, "demo")));
        Assert.Equal("name", error.Field);
    }

    [Fact]
    public void A_name_of_64_characters_is_too_long() =>
        Assert.Equal("name", Assert.Single(Validate(new VmSpec(new string('a', 64), 1, 256, "demo"))).Field);

    [Fact]
    public void An_unknown_image_is_named_with_the_known_ones()
    {
        var error = Assert.Single(Validate(new VmSpec("web1", 1, 256, "windows")));
        Assert.Equal("image", error.Field);
        Assert.Contains("demo", error.Message);
    }

    [Fact]
    public void Every_wrong_field_is_reported_at_once()
    {
        var fields = Validate(new VmSpec("a/b", 0, -1, "nope")).Select(e => e.Field).ToList();
        Assert.Equal(["name", "vcpus", "memoryMiB", "image"], fields);
    }
}
