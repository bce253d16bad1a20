using System.Diagnostics;
using System.Text;
using Orchestrator.Domain;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

public sealed class NoCloudSeedTests
{
    private static readonly GuestImage Image = new("demo", "/images/vmlinuz", "/images/initrd.img", "");

    private static readonly byte[] HostileUserData =
        [.. "#!/bin/sh\n$(touch /tmp/pwned) ; rm -rf / 'x' \"y\" `id`\n"u8, 0, 0, .. "after NUL\n"u8];

    [Fact]
    public void The_seed_is_an_iso9660_volume_labelled_cidata_as_blkid_reads_it()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, NoCloudSeed.Build(VmId.New(), new GuestSeed("web1", [], HostileUserData), DateTimeOffset.UtcNow));

            using var blkid = Process.Start(new ProcessStartInfo("blkid", ["-o", "export", file]) { RedirectStandardOutput = true })!;
            var found = blkid.StandardOutput.ReadToEnd().Split('\n');
            blkid.WaitForExit();
            Assert.Contains("TYPE=iso9660", found);
            Assert.Contains("LABEL=cidata", found);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void User_data_lies_in_the_image_byte_for_byte_from_a_sector_start_and_its_size_is_recorded()
    {
        var image = NoCloudSeed.Build(VmId.New(), new GuestSeed("web1", [], HostileUserData), DateTimeOffset.UtcNow);

        var at = image.AsSpan().IndexOf(HostileUserData);
        Assert.True(at > 0 && at % Iso9660Writer.SectorSize == 0, $"user-data at byte {at}");
        Assert.Equal(0, image.Length % Iso9660Writer.SectorSize);
        Assert.True(image.Skip(at + HostileUserData.Length).Take(16).All(b => b == 0));
    }

    [Fact]
    public void Meta_data_names_the_vm_by_id_its_hostname_and_each_key_quoted()
    {
        var vmId = VmId.New();
        var yaml = Encoding.UTF8.GetString(NoCloudSeed.MetaData(vmId, new GuestSeed("web1.example.org", ["ssh-ed25519 AAAA a \"quoted\" \\ comment"], [])));

        Assert.Equal(
            $"instance-id: \"{vmId.Compact}\"\nlocal-hostname: \"web1.example.org\"\npublic-keys:\n  - \"ssh-ed25519 AAAA a \\\"quoted\\\" \\\\ comment\"\n",
            yaml);
    }

    [Fact]
    public void The_seed_disk_is_a_read_only_virtio_disk_at_a_path_of_ids_and_no_bootstrap_text_reaches_the_arguments()
    {
        var spec = new VmLaunchSpec(VmId.New(), "web1", 1, 128, Image, Epoch.Zero,
            Seed: new GuestSeed("evil,host", ["ssh-ed25519 AAAA evil,key"], Encoding.UTF8.GetBytes("evil,data")));
        var paths = VmPaths.For("/run/o/vms", spec.VmId.Compact);

        var argv = QemuDriver.BuildArguments("qemu", spec, paths, new QemuDriverOptions { RunDirectory = "/run/o" });

        Assert.Contains($"file=/run/o/vms/{spec.VmId.Compact}/seed.iso,if=none,id=seed0,format=raw,readonly=on", argv);
        Assert.Contains("virtio-blk-pci,drive=seed0", argv);
        Assert.DoesNotContain(argv, a => a.Contains("evil", StringComparison.Ordinal));
    }

    [Fact]
    public void A_launch_without_a_seed_has_no_seed_disk()
    {
        var spec = new VmLaunchSpec(VmId.New(), "x", 1, 128, Image, Epoch.Zero);

        var argv = QemuDriver.BuildArguments("qemu", spec, VmPaths.For("/run/o/vms", spec.VmId.Compact), new QemuDriverOptions { RunDirectory = "/run/o" });

        Assert.DoesNotContain("-drive", argv);
    }
}
